//! Where a projection's disk goes: the rows, key bytes and value bytes of
//! each key kind in a store, beside the size of its table files.
//!
//! ```sh
//! target/release/examples/store_sizes var/pickup-projection/store-*
//! ```
//!
//! Opens each store read-only (a running projection may keep it open) and
//! reads every row once. Bytes are as written, before RocksDB's block
//! encoding and compression; the table files' size is what lies on disk,
//! and RocksDB's level statistics say in which level the files lie.
//!
//! With `--rewrite DIR`, each store's rows are also written into fresh
//! stores under `DIR`, one per way of compressing them, and compacted
//! whole into their last level (where a store's rows end up once it has
//! been serving a while), to compare what each takes on disk.

use std::{collections::BTreeMap, path::Path};

use hub_store::table_file_bytes;
use rocksdb::{
    BlockBasedOptions, BottommostLevelCompaction, CompactOptions, DBCompressionType, IteratorMode,
    Options, WriteBatch, DB,
};

/// The ways of compressing a store that `--rewrite` compares: name,
/// compression of the last level, block size.
const VARIANTS: &[(&str, DBCompressionType, usize)] = &[
    ("lz4", DBCompressionType::Lz4, 4 << 10),
    ("zstd", DBCompressionType::Zstd, 4 << 10),
    ("zstd-16k", DBCompressionType::Zstd, 16 << 10),
];

#[derive(Default)]
struct Tally {
    rows: u64,
    key_bytes: u64,
    value_bytes: u64,
}

fn report(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let db = DB::open_for_read_only(&Options::default(), dir, false)?;
    let mut by_kind: BTreeMap<u8, Tally> = BTreeMap::new();
    for row in db.iterator(IteratorMode::Start) {
        let (key, value) = row?;
        let tally = by_kind
            .entry(key.first().copied().unwrap_or(0))
            .or_default();
        tally.rows += 1;
        tally.key_bytes += key.len() as u64;
        tally.value_bytes += value.len() as u64;
    }
    let all: u64 = by_kind.values().map(|t| t.key_bytes + t.value_bytes).sum();
    let on_disk = table_file_bytes(dir)?;
    println!("{}", dir.display());
    println!(
        "{:>6} {:>12} {:>14} {:>14} {:>8} {:>10}",
        "kind", "rows", "key bytes", "value bytes", "share", "B/row"
    );
    for (kind, t) in &by_kind {
        let bytes = t.key_bytes + t.value_bytes;
        println!(
            "{:>#6x} {:>12} {:>14} {:>14} {:>7.1}% {:>10.1}",
            kind,
            t.rows,
            t.key_bytes,
            t.value_bytes,
            100.0 * bytes as f64 / all.max(1) as f64,
            bytes as f64 / t.rows.max(1) as f64
        );
    }
    println!(
        "rows' bytes {all}, table files {on_disk} ({:.2} of the rows' bytes)",
        on_disk as f64 / all.max(1) as f64
    );
    // Which level the files lie in: the last one is Zstandard's, the
    // others LZ4's.
    if let Some(levels) = db.property_value("rocksdb.levelstats")? {
        println!("{levels}");
    }
    Ok(())
}

/// Writes every row of `from` into a fresh store at `to` compressed as
/// `variant` says, compacts it whole, and returns its table files' size.
/// Of the stores' own settings (`hub-store`'s `open_db`) it keeps those
/// that bear on size: LZ4 above the last level, dynamic level sizes, a
/// Bloom filter per table.
fn rewrite(
    from: &DB,
    to: &Path,
    variant: &(&str, DBCompressionType, usize),
) -> Result<u64, Box<dyn std::error::Error>> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.set_compression_type(DBCompressionType::Lz4);
    opts.set_bottommost_compression_type(variant.1);
    opts.set_level_compaction_dynamic_level_bytes(true);
    let mut table = BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    table.set_block_size(variant.2);
    opts.set_block_based_table_factory(&table);
    let db = DB::open(&opts, to)?;
    let mut batch = WriteBatch::default();
    for row in from.iterator(IteratorMode::Start) {
        let (key, value) = row?;
        batch.put(key, value);
        if batch.len() >= 10_000 {
            db.write(std::mem::take(&mut batch))?;
        }
    }
    db.write(batch)?;
    db.flush()?;
    let mut compact = CompactOptions::default();
    compact.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
    db.compact_range_opt::<&[u8], &[u8]>(None, None, &compact);
    drop(db);
    Ok(table_file_bytes(to)?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.iter().any(|d| d == "--help" || d == "-h") {
        println!("usage: store_sizes [--rewrite OUT_DIR] STORE_DIR...  (each a RocksDB folder: a projection's store-<ms>)");
        return Ok(());
    }
    let out = match args.iter().position(|a| a == "--rewrite") {
        Some(i) if i + 1 < args.len() => {
            let out = args.remove(i + 1);
            args.remove(i);
            Some(out)
        }
        Some(_) => return Err("--rewrite needs a folder".into()),
        None => None,
    };
    for (n, dir) in args.iter().enumerate() {
        report(Path::new(dir))?;
        if let Some(out) = &out {
            let from = DB::open_for_read_only(&Options::default(), dir, false)?;
            for variant in VARIANTS {
                let to = Path::new(out).join(format!("{n}-{}", variant.0));
                let bytes = rewrite(&from, &to, variant)?;
                println!("  rewritten, {:<9} table files {bytes}", variant.0);
            }
            println!();
        }
    }
    Ok(())
}
