//! The partnership register: the 149 local drug partnerships of England with
//! their 2006/07 harm-reduction review scores (`seeds/partnerships.tsv`).
//! Every command names one; an unknown code is refused.

use std::collections::BTreeMap;

use crate::Error;

/// One partnership and its 2006/07 scores (criteria 7–10, 0–4 each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partnership {
    pub code: String,
    pub name: String,
    pub criteria_2006_07: [u8; 4],
    pub harm_reduction_score_2006_07: u8,
}

#[derive(Debug, Clone, Default)]
pub struct PartnershipRegister {
    by_code: BTreeMap<String, Partnership>,
}

const HEADER: [&str; 7] = [
    "code",
    "name",
    "criterion_7_2006_07",
    "criterion_8_2006_07",
    "criterion_9_2006_07",
    "criterion_10_2006_07",
    "harm_reduction_score_2006_07",
];

impl PartnershipRegister {
    /// Parses the TSV (header line first). `source` names it in errors.
    pub fn parse(tsv: &str, source: &str) -> Result<Self, Error> {
        let bad = |line: usize, why: String| {
            Error::config(
                "HUB_PARTNERSHIPS_FILE",
                format!("{source} line {line}: {why}"),
            )
        };
        let mut lines = tsv.lines().enumerate();
        let (_, header) = lines.next().ok_or_else(|| bad(1, "empty file".into()))?;
        let header: Vec<&str> = header.split('\t').collect();
        if header != HEADER {
            return Err(bad(1, format!("header must be {}", HEADER.join(" "))));
        }
        let mut by_code = BTreeMap::new();
        for (i, line) in lines {
            if line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() != HEADER.len() {
                return Err(bad(
                    i + 1,
                    format!("{} columns, expected {}", f.len(), HEADER.len()),
                ));
            }
            let num = |s: &str| {
                s.trim()
                    .parse::<u8>()
                    .map_err(|_| bad(i + 1, format!("`{s}` is not a score")))
            };
            let p = Partnership {
                code: f[0].trim().to_string(),
                name: f[1].trim().to_string(),
                criteria_2006_07: [num(f[2])?, num(f[3])?, num(f[4])?, num(f[5])?],
                harm_reduction_score_2006_07: num(f[6])?,
            };
            if p.code.is_empty() {
                return Err(bad(i + 1, "empty code".into()));
            }
            if by_code.insert(p.code.clone(), p).is_some() {
                return Err(bad(i + 1, "code appears twice".into()));
            }
        }
        Ok(Self { by_code })
    }

    pub fn load(path: &std::path::Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config("HUB_PARTNERSHIPS_FILE", format!("{}: {e}", path.display()))
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn get(&self, code: &str) -> Option<&Partnership> {
        self.by_code.get(code)
    }

    pub fn len(&self) -> usize {
        self.by_code.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_code.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Partnership> {
        self.by_code.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TSV: &str = "code\tname\tcriterion_7_2006_07\tcriterion_8_2006_07\tcriterion_9_2006_07\tcriterion_10_2006_07\tharm_reduction_score_2006_07\nbradford\tBradford\t4\t4\t4\t4\t16\nbolton\tBolton\t4\t3\t4\t4\t15\n";

    #[test]
    fn parses_codes_and_scores() {
        let r = PartnershipRegister::parse(TSV, "t").unwrap();
        assert_eq!(r.len(), 2);
        let b = r.get("bolton").unwrap();
        assert_eq!(b.name, "Bolton");
        assert_eq!(b.criteria_2006_07, [4, 3, 4, 4]);
        assert_eq!(b.harm_reduction_score_2006_07, 15);
        assert!(r.get("atlantis").is_none());
    }

    #[test]
    fn refuses_a_malformed_file() {
        assert!(PartnershipRegister::parse("", "t").is_err());
        assert!(PartnershipRegister::parse("code\tname\n", "t").is_err());
        let dup = format!("{TSV}bolton\tBolton\t1\t1\t1\t1\t4\n");
        assert!(PartnershipRegister::parse(&dup, "t")
            .unwrap_err()
            .to_string()
            .contains("twice"));
        let bad = TSV.replace("\t16", "\tsixteen");
        assert!(PartnershipRegister::parse(&bad, "t").is_err());
    }

    #[test]
    fn the_seeded_register_has_149_partnerships() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../seeds/partnerships.tsv");
        let r = PartnershipRegister::load(std::path::Path::new(path)).unwrap();
        assert_eq!(r.len(), 149);
        assert!(r.get("bradford").is_some());
    }
}
