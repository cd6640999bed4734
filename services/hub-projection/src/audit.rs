//! The person keys an audited read returned, as the audit trail keeps
//! them: each hex `person_key` as its 16 bytes, one after another. A
//! pick-up list of a thousand people is 16 KB in the trail rather than 34,
//! and the audit record is written before every list leaves.

/// Packs hex person keys; a key that is not 32 hex digits (none the hub
/// makes) is kept as its own bytes behind a zero length marker would be
/// ambiguous, so it is refused instead.
pub fn pack(keys: &[String]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(keys.len() * 16);
    for k in keys {
        let bytes = hex::decode(k).map_err(|_| format!("not a person key: {k:?}"))?;
        if bytes.len() != 16 {
            return Err(format!("not a person key: {k:?}"));
        }
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

/// The hex person keys of a packed list (a trailing partial key is
/// ignored: the trail never holds one).
pub fn unpack(packed: &[u8]) -> Vec<String> {
    packed.chunks_exact(16).map(hex::encode).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_at_16_bytes_each() {
        let keys = vec![
            "00112233445566778899aabbccddeeff".to_string(),
            "ffeeddccbbaa99887766554433221100".to_string(),
        ];
        let packed = pack(&keys).unwrap();
        assert_eq!(packed.len(), 32);
        assert_eq!(unpack(&packed), keys);
        assert!(pack(&["nhs".to_string()]).is_err());
        assert!(unpack(&[]).is_empty());
    }
}
