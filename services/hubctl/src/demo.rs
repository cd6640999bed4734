//! The demo scenario: made-up people with valid-looking identifiers and
//! release dates spread over the coming four weeks, recorded through the
//! public RPCs. Deterministic for a seed and a day: request ids derive from
//! both, so a second run that day is answered as duplicates and records
//! nothing new.

use anyhow::Result;
use hub_proto::{
    common::PersonRef,
    prison::{prison_service_client::PrisonServiceClient, RecordReleaseDateRequest},
};
use tonic::transport::Channel;

use crate::{explain, Caller};

/// Partnerships the demo fills, in order.
pub const PARTNERSHIPS: &[&str] = &["bradford", "leeds", "kirklees", "calderdale", "wakefield"];
const PRISONS: &[&str] = &["LEI", "WDI", "HMI"];
const GIVEN: &[&str] = &[
    "Alex", "Sam", "Jo", "Chris", "Danny", "Lee", "Kerry", "Mo", "Jamie", "Robin",
];
const FAMILY: &[&str] = &[
    "Archer", "Bell", "Carter", "Dixon", "Ellis", "Frost", "Green", "Hughes", "Irwin", "Jones",
];

/// SplitMix64: small, deterministic, good enough for demo data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A valid NHS number (modulus 11) from random digits.
fn nhs_number(rng: &mut Rng) -> String {
    loop {
        let digits: Vec<u32> = (0..9).map(|_| rng.below(10) as u32).collect();
        let sum: u32 = digits.iter().zip((2..=10).rev()).map(|(d, w)| d * w).sum();
        let check = match 11 - sum % 11 {
            11 => 0,
            10 => continue,
            c => c,
        };
        return digits
            .iter()
            .chain([check].iter())
            .map(|d| d.to_string())
            .collect();
    }
}

fn prison_number(rng: &mut Rng) -> String {
    let letter = |rng: &mut Rng| char::from(b'A' + rng.below(26) as u8);
    format!(
        "{}{:04}{}{}",
        letter(rng),
        rng.below(10_000),
        letter(rng),
        letter(rng)
    )
}

pub async fn seed(
    prison: &mut PrisonServiceClient<Channel>,
    caller: &Caller,
    partnerships: usize,
    people: usize,
    seed: u64,
) -> Result<String> {
    let mut rng = Rng(seed);
    let london = jiff::tz::TimeZone::get("Europe/London")?;
    let today = jiff::Timestamp::now().to_zoned(london.clone()).date();
    // Same day, same seed: the same bodies and request ids, so a re-run is
    // answered as duplicates. Recorded as of midnight, London time.
    let midnight = today.to_zoned(london)?.timestamp();
    let occurred_at = prost_types::Timestamp {
        seconds: midnight.as_second(),
        nanos: 0,
    };
    let (mut recorded, mut duplicates) = (0, 0);
    for partnership in PARTNERSHIPS.iter().take(partnerships) {
        for i in 0..people {
            let person = PersonRef {
                nhs_number: nhs_number(&mut rng),
                prison_number: prison_number(&mut rng),
                given_name: GIVEN[rng.below(GIVEN.len() as u64) as usize].into(),
                family_name: FAMILY[rng.below(FAMILY.len() as u64) as usize].into(),
                date_of_birth: format!(
                    "19{:02}-{:02}-{:02}",
                    70 + rng.below(30),
                    1 + rng.below(12),
                    1 + rng.below(28)
                ),
                ..Default::default()
            };
            // Some released in the last three weeks, most in the coming four.
            let offset = rng.below(49) as i64 - 20;
            let req = RecordReleaseDateRequest {
                request_id: format!("demo-{seed}-{today}-{partnership}-{i}-release"),
                partnership_code: partnership.to_string(),
                occurred_at: Some(occurred_at),
                prison_code: PRISONS[rng.below(PRISONS.len() as u64) as usize].into(),
                person: Some(person),
                release_date: (today + jiff::Span::new().days(offset)).to_string(),
            };
            let ack = prison
                .record_release_date(caller.request(req)?)
                .await
                .map_err(explain)?
                .into_inner();
            if ack.duplicate {
                duplicates += 1;
            } else {
                recorded += 1;
            }
        }
    }
    Ok(format!(
        "demo seed {seed}: {recorded} events recorded, {duplicates} already there"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_identifiers_are_valid_and_deterministic() {
        let mut a = Rng(7);
        let mut b = Rng(7);
        for _ in 0..200 {
            let n = nhs_number(&mut a);
            assert_eq!(n, nhs_number(&mut b));
            let d: Vec<u32> = n.chars().map(|c| c.to_digit(10).unwrap()).collect();
            let sum: u32 = d[..9].iter().zip((2..=10).rev()).map(|(x, w)| x * w).sum();
            assert_eq!((11 - sum % 11) % 11, d[9]);
            let p = prison_number(&mut a);
            assert_eq!(p, prison_number(&mut b));
            assert_eq!(p.len(), 7);
        }
    }
}
