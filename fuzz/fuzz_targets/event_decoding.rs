//! Event decoding and folding in the projections: the input is a run of
//! stream messages (each a 2-byte big-endian length, then that many bytes
//! of body), decoded exactly as the projections' consumer decodes them and
//! applied, in order, to both projections' pure models over an in-memory
//! store; then every pick-up record is read back and viewed and a year's
//! training counts tallied. Whatever a message holds, the projections
//! park it, apply it, or return an error: never a panic.
#![no_main]

use hub_core::time::FinancialYear;
use hub_projection::message::{decode, Decoded};
use hub_store::{KeyKind, Kv, MemKv};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (mut pickup, mut training) = (MemKv::default(), MemKv::default());
    let mut rest = data;
    let mut sequence = 0;
    while rest.len() >= 2 {
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let body = &rest[2..(2 + len).min(rest.len())];
        rest = &rest[2 + body.len()..];
        sequence += 1;
        if let Decoded::Event(event) = decode(body) {
            let _ = pickup_projection::model::apply(&mut pickup, &event, sequence);
            let _ = training_projection::model::apply(&mut training, &event, sequence);
        }
    }
    let as_of = jiff::civil::date(2026, 11, 24);
    for (key, bytes) in pickup.scan(KeyKind::PickupPerson, b"").unwrap_or_default() {
        if let Ok(record) = pickup_projection::model::decode_record(&bytes) {
            let root = String::from_utf8_lossy(key.rsplit(|b| *b == 0).next().unwrap_or_default());
            if let Some(entry) = pickup_projection::model::view(
                &root,
                &record,
                as_of,
                pickup_projection::model::Reader::Worker,
            ) {
                let _ = pickup_projection::model::in_window(&entry, 14);
            }
        }
    }
    let fy = FinancialYear::of(as_of);
    let (year, headcounts) = training_projection::model::prefixes("bradford", fy);
    let rows = training_projection::model::YearRows {
        counters: training.scan(KeyKind::Counter, &year).unwrap_or_default(),
        headcounts: training
            .scan(KeyKind::Headcount, &headcounts)
            .unwrap_or_default(),
    };
    let counts = training_projection::model::tally("bradford", fy, &rows);
    assert!(counts.custody_officers_trained_pct.is_none_or(|p| p >= 0.0));
});
