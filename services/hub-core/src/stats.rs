//! How the hub states figures below national level: percentages to one
//! decimal, and the disclosure rule NHS statistics apply (contract section
//! 5): counts of people from 1 to 7 are withheld, and so is any percentage
//! computed from a withheld count.

/// `part ÷ whole × 100` to one decimal; absent when `whole` is 0.
pub fn percent(part: u32, whole: u32) -> Option<f64> {
    (whole > 0).then(|| (f64::from(part) * 1000.0 / f64::from(whole)).round() / 10.0)
}

/// Whether a count of people is withheld from callers without
/// `SeeSmallCounts`: from 1 to 7 (0 is shown; it discloses nobody).
pub fn withheld(people: u32) -> bool {
    (1..=7).contains(&people)
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
}
