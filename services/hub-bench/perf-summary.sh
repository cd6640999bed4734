#!/bin/sh
# Where each process's CPU went in a `hub-bench --perf FILE` profile:
# samples per process, sorted into coarse kinds by symbol.
#   services/hub-bench/perf-summary.sh FILE
# The kinds are matched on symbol names, in this order: kernel, RocksDB's
# memtable, the rest of RocksDB (and its LZ4), the NATS client and tokio,
# prost, the allocators (glibc's, mimalloc's), glibc's mem* and the rest
# of libc, hash maps, B-tree maps, everything else.
set -eu
file=$1
for pid in $(perf script -i "$file" -F pid 2>/dev/null | sort -u); do
  # The process's own executable: the object most of its samples are in,
  # but for the kernel and shared libraries.
  name=$(perf script -i "$file" --pid "$pid" -F ip,dso 2>/dev/null | grep -o '([^)]*)' | grep -v 'kernel\|\.so\|vdso\|unknown' | sort | uniq -c | sort -rn | head -1 | sed 's|.*/||; s|)||')
  echo "== pid $pid ${name:-}"
  perf script -i "$file" --pid "$pid" -F ip,sym,dso 2>/dev/null | awk '
    { s = $0; c = "other (our code, std, Go runtime)";
      if (s ~ /kernel/) c = "kernel";
      else if (s ~ /InlineSkipList|MemTable/) c = "rocksdb memtable";
      else if (s ~ /rocksdb|LZ4/) c = "rocksdb other";
      else if (s ~ /async_nats|tokio|bytes::|h2::|tonic|mio::/) c = "nats client, tokio";
      else if (s ~ /prost|hub_proto/) c = "prost";
      else if (s ~ /_mi_|mi_free|mi_theap|mi_malloc/ || (s ~ /libc.so/ && s ~ /malloc|free|_int_|realloc|consolidate|unlink_chunk|tcache/)) c = "allocator";
      else if (s ~ /libc.so/) c = "libc mem* and other";
      else if (s ~ /hashbrown|sip::Hasher|hash_one|HashMap/) c = "hash maps";
      else if (s ~ /btree|BTree/) c = "btree maps";
      n[c]++; t++ }
    END { for (c in n) printf "  %-36s %6.1f%% %8d\n", c, 100 * n[c] / t, n[c];
          printf "  %-36s %6s  %8d\n", "samples", "", t }' | sort -t% -k1,1 -k2 -rn
done
