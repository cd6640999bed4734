//! Made-up identifiers that pass the hub's rules, one per number: the
//! benchmarks' national year needs millions of distinct people without
//! storing them. Deterministic, so a run can be repeated exactly.

/// A 10-digit NHS number with a valid modulus-11 check digit.
pub fn nhs_number(n: u64) -> String {
    // Spread consecutive numbers over the 9-digit space, then skip the
    // bodies whose check digit would be 10 (they have no valid number).
    let mut body = (n.wrapping_mul(2_654_435_761) + 123_456_789) % 1_000_000_000;
    loop {
        let digits: Vec<u64> = format!("{body:09}")
            .bytes()
            .map(|b| u64::from(b - b'0'))
            .collect();
        let sum: u64 = digits.iter().zip((2..=10).rev()).map(|(d, w)| d * w).sum();
        let check = match 11 - sum % 11 {
            11 => 0,
            10 => {
                body = (body + 1) % 1_000_000_000;
                continue;
            }
            c => c,
        };
        return format!("{body:09}{check}");
    }
}

/// A NOMIS prison number, `A1234BC`: distinct for n below 175,760,000.
pub fn prison_number(n: u64) -> String {
    let letter = |k: u64| char::from(b'A' + (k % 26) as u8);
    format!(
        "{}{:04}{}{}",
        letter(n / 6_760_000),
        n % 10_000,
        letter(n / 10_000),
        letter(n / 260_000)
    )
}

/// An NDTMS-style attributor with a real date of birth.
pub fn client_code(n: u64) -> String {
    let letter = |k: u64| char::from(b'A' + (k % 26) as u8);
    format!(
        "{}{}{:02}{:02}{}{}",
        letter(n),
        letter(n / 26),
        1 + (n / 676) % 28,
        1 + (n / 18_928) % 12,
        1950 + (n / 227_136) % 55,
        ["M", "F", "X", "U"][(n % 4) as usize]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::person;

    #[test]
    fn every_made_up_identifier_passes_the_rules_and_differs() {
        let mut seen = std::collections::HashSet::new();
        for n in (0..20_000).chain([1_000_000, 123_456_789]) {
            assert!(
                person::nhs_number(&nhs_number(n)).is_ok(),
                "{n}: {}",
                nhs_number(n)
            );
            assert!(
                person::prison_number(&prison_number(n)).is_ok(),
                "{n}: {}",
                prison_number(n)
            );
            assert!(
                person::client_code(&client_code(n)).is_ok(),
                "{n}: {}",
                client_code(n)
            );
            assert!(seen.insert(nhs_number(n)), "NHS number repeats at {n}");
            assert!(
                seen.insert(prison_number(n)),
                "prison number repeats at {n}"
            );
        }
    }
}
