//! What a projection spends per needle exchange to learn that it needs
//! (almost) nothing from it: decoding the whole event, as every message was
//! decoded before, against reading its envelope (`hub_projection::message::
//! Envelope`), as the pick-up and training projections now do for the two
//! thirds of a national year that are needle exchanges.
//!
//! No server and no store: the same encoded event, read `--messages` times
//! each way, alternately in `--rounds` rounds, on one thread, with the
//! projections' allocator (mimalloc). Each way is timed alone (decoding,
//! or reading the envelope) and with what each projection's model then
//! does with it, over an in-memory store (the pick-up projection's one
//! write, when its key was last named, goes to a map that stays one entry
//! long). It prints nanoseconds per message, CPU time of this process from
//! `/proc` (user + system), so that the figure is the work, not the
//! machine's other load.
//!
//! ```sh
//! target/release/examples/envelope_cost --messages 2000000 --rounds 3
//! ```

use std::hint::black_box;

use anyhow::{Context as _, Result};
use clap::Parser;
use prost::Message;

use hub_projection::message::{decode, Decoded, Envelope};
use hub_proto::events::{event::Payload, Event, NeedleExchangeRecorded};
use hub_store::MemKv;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// Messages read each way in each round.
    #[arg(long, default_value_t = 2_000_000)]
    messages: u64,
    /// Rounds, each reading both ways.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
}

/// A needle exchange as the pharmacy service records it: ids, codes, keyed
/// hashes and the request digest at their real lengths.
fn needle_exchange() -> Vec<u8> {
    let at = Some(prost_types::Timestamp {
        seconds: 1_790_000_000,
        nanos: 123_000_000,
    });
    Event {
        event_id: "0193a6f2-5c1e-7d40-9a51-3f2b8c7d1e90".into(),
        event_type: "needle_exchange_recorded".into(),
        schema_version: hub_proto::SCHEMA_VERSION,
        occurred_at: at,
        recorded_at: at,
        agency: "pharmacy".into(),
        org_code: "FA123".into(),
        partnership_code: "E08000032".into(),
        actor_user_id: "pharmacist-0042".into(),
        actor_role: "pharmacist".into(),
        person_key: "5f0c9a1e7b3d4c2a8e6f1b0d9c7a5e3f".into(),
        request_id: "0193a6f2-5c1e-7d40-9a51-3f2b8c7d1e91".into(),
        client_key: "5f0c9a1e7b3d4c2a8e6f1b0d9c7a5e3f".into(),
        request_digest: "9d1c".repeat(16),
        payload: Some(Payload::NeedleExchangeRecorded(NeedleExchangeRecorded {
            pharmacy_code: "FA123".into(),
            packs_given: 3,
            returns: 2,
        })),
        ..Default::default()
    }
    .encode_to_vec()
}

/// This process's CPU time (user + system) in nanoseconds.
fn cpu_ns() -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("/proc/self/stat")?;
    // Fields after the command's closing parenthesis; utime and stime are
    // the 12th and 13th of them, in clock ticks (100 a second here).
    let rest = stat.rsplit_once(')').context("stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(ticks * 10_000_000)
}

/// CPU nanoseconds per message of `read` over `n` messages.
fn per_message(n: u64, mut read: impl FnMut() -> bool) -> Result<f64> {
    let start = cpu_ns()?;
    let mut taken = 0u64;
    for _ in 0..n {
        taken += u64::from(read());
    }
    assert_eq!(
        taken, n,
        "every message taken as a needle exchange naming one key"
    );
    Ok((cpu_ns()? - start) as f64 / n as f64)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let body = needle_exchange();
    let n = args.messages;
    let mut kv = MemKv::default();
    println!(
        "a needle exchange of {} bytes; ns of CPU per message",
        body.len()
    );
    println!("| round | decoded | envelope read | training: decoded, applied | training: envelope | pick-up: decoded, applied | pick-up: envelope, applied |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for round in 1..=args.rounds {
        let decoded = per_message(
            n,
            || matches!(decode(black_box(&body)), Decoded::Event(e) if e.linked_person_keys.is_empty()),
        )?;
        let read = per_message(n, || {
            Envelope::read(black_box(&body))
                .is_some_and(|e| e.is_needle_exchange() && e.names_one_key_at_most())
        })?;
        let training = per_message(n, || match decode(black_box(&body)) {
            Decoded::Event(e) => training_projection::model::apply(&mut kv, &e, 1).is_ok(),
            Decoded::Parked(_) => false,
        })?;
        let training_envelope = per_message(n, || {
            Envelope::read(black_box(&body))
                .is_some_and(|e| training_projection::model::apply_envelope(&e))
        })?;
        let pickup = per_message(n, || match decode(black_box(&body)) {
            Decoded::Event(e) => pickup_projection::model::apply(&mut kv, &e, 1).is_ok(),
            Decoded::Parked(_) => false,
        })?;
        let pickup_envelope = per_message(n, || {
            Envelope::read(black_box(&body))
                .is_some_and(|e| pickup_projection::model::apply_envelope(&mut kv, &e))
        })?;
        println!(
            "| {round} | {decoded:.0} | {read:.0} | {training:.0} | {training_envelope:.0} | {pickup:.0} | {pickup_envelope:.0} |"
        );
    }
    assert_eq!(kv.0.len(), 1, "one key, last named once");
    Ok(())
}
