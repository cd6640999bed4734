//! How the hub states figures below national level: percentages to one
//! decimal, and the disclosure rule NHS statistics apply (contract section
//! 5): counts of people from 1 to 7 are withheld, and so is any percentage
//! computed from a withheld count. Beside England's total, a column of
//! partnerships with one count withheld would give it away by difference,
//! so a second is withheld with it ([`complement`]); and the spread of a
//! figure across partnerships ([`quartiles`]).

/// `part ÷ whole × 100` to one decimal; absent when `whole` is 0.
pub fn percent(part: u32, whole: u32) -> Option<f64> {
    (whole > 0).then(|| (f64::from(part) * 1000.0 / f64::from(whole)).round() / 10.0)
}

/// Whether a count of people is withheld from callers without
/// `SeeSmallCounts`: from 1 to 7 (0 is shown; it discloses nobody).
pub fn withheld(people: u32) -> bool {
    (1..=7).contains(&people)
}

/// The lower quartile, median and upper quartile of `values`, by linear
/// interpolation between the closest ranks (as R's default, type 7, and
/// spreadsheets' `QUARTILE.INC`); `None` when there are none.
pub fn quartiles(values: &[f64]) -> Option<[f64; 3]> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let last = sorted.len().checked_sub(1)?;
    let at = |p: f64| {
        let h = last as f64 * p;
        let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
        let v = sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo]);
        (v * 10.0).round() / 10.0
    };
    Some([at(0.25), at(0.5), at(0.75)])
}

/// Which other count of a column of partnerships to withhold as well, so
/// that a withheld one cannot be worked out from the total: when exactly
/// one count of `column` is withheld (`None`), the smallest count shown
/// that is not 0 (0 discloses nobody, and withholding it would hide
/// nothing from the difference). A column shown beside England's total is
/// otherwise a sum with one unknown.
pub fn complement(column: &[Option<u32>]) -> Option<usize> {
    if column.iter().filter(|v| v.is_none()).count() != 1 {
        return None;
    }
    column
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.filter(|v| *v > 0).map(|v| (v, i)))
        .min()
        .map(|(_, i)| i)
}

/// [`complement`] down each of `columns` of a table of partnerships:
/// `shown(row, column)` is a row's count as the reader sees it (`None`
/// when withheld), `withhold(row, column)` withholds it and what is
/// computed from it.
pub fn complement_columns<R>(
    rows: &mut [R],
    columns: &[&str],
    shown: impl Fn(&mut R, &str) -> Option<u32>,
    mut withhold: impl FnMut(&mut R, &str),
) {
    for column in columns {
        let values: Vec<_> = rows.iter_mut().map(|r| shown(r, column)).collect();
        if let Some(i) = complement(&values) {
            withhold(&mut rows[i], column);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_have_one_decimal_and_none_without_a_whole() {
        assert_eq!(percent(1, 3), Some(33.3));
        assert_eq!(percent(2, 3), Some(66.7));
        assert_eq!(percent(0, 5), Some(0.0));
        assert_eq!(percent(0, 0), None);
    }

    #[test]
    fn one_to_seven_people_are_withheld() {
        assert!(!withheld(0));
        assert!(withheld(1));
        assert!(withheld(7));
        assert!(!withheld(8));
    }

    #[test]
    fn quartiles_interpolate_between_ranks() {
        assert_eq!(quartiles(&[]), None);
        assert_eq!(quartiles(&[5.0]), Some([5.0, 5.0, 5.0]));
        assert_eq!(quartiles(&[4.0, 1.0, 3.0, 2.0]), Some([1.8, 2.5, 3.3]));
        assert_eq!(quartiles(&[1.0, 2.0, 3.0, 4.0, 5.0]), Some([2.0, 3.0, 4.0]));
    }

    #[test]
    fn a_lone_withheld_count_takes_the_smallest_shown_one_with_it() {
        assert_eq!(
            complement(&[Some(40), None, Some(0), Some(12), Some(9)]),
            Some(4)
        );
        // Two withheld already: their sum is all the total gives away.
        assert_eq!(complement(&[Some(40), None, None, Some(9)]), None);
        assert_eq!(complement(&[Some(40), Some(9)]), None);
        // Nothing else to withhold.
        assert_eq!(complement(&[None, Some(0)]), None);
    }
}
