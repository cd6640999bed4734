//! The pick-up model's state in RocksDB: [`PickupState`] over a staged
//! `hub_store::Txn`, so that one batch of events commits atomically with the
//! applied sequence.

use prost::Message;

use hub_store::{parts, Error, KeyKind, Txn};

use crate::model::{ListPosition, PersonRecord, PickupState};

pub struct TxnState<'t, 's> {
    pub txn: &'t mut Txn<'s>,
}

fn text(bytes: Vec<u8>) -> Result<String, Error> {
    String::from_utf8(bytes).map_err(|_| Error::Corrupt("a person key is not UTF-8".into()))
}

pub fn decode_record(bytes: &[u8]) -> Result<PersonRecord, Error> {
    PersonRecord::decode(bytes).map_err(|e| Error::Corrupt(format!("pick-up record: {e}")))
}

pub fn index_key(at: &ListPosition, root: &str) -> Vec<u8> {
    parts(&[
        at.partnership_code.as_bytes(),
        at.release_date.as_bytes(),
        root.as_bytes(),
    ])
}

impl PickupState for TxnState<'_, '_> {
    type Error = Error;

    fn root_of(&self, key: &str) -> Result<Option<String>, Error> {
        self.txn
            .get(KeyKind::PersonLink, key.as_bytes())?
            .map(text)
            .transpose()
    }

    fn members(&self, root: &str) -> Result<Vec<String>, Error> {
        let prefix = parts(&[root.as_bytes(), b""]);
        self.txn
            .scan(KeyKind::PersonMember, &prefix)?
            .into_iter()
            .map(|(k, _)| text(k[prefix.len()..].to_vec()))
            .collect()
    }

    fn set_root(&mut self, key: &str, root: &str, old_root: Option<&str>) {
        self.txn.put(
            KeyKind::PersonLink,
            key.as_bytes(),
            root.as_bytes().to_vec(),
        );
        if let Some(old) = old_root {
            self.txn.delete(
                KeyKind::PersonMember,
                &parts(&[old.as_bytes(), key.as_bytes()]),
            );
        }
        self.txn.put(
            KeyKind::PersonMember,
            &parts(&[root.as_bytes(), key.as_bytes()]),
            Vec::new(),
        );
    }

    fn record(&self, root: &str) -> Result<Option<PersonRecord>, Error> {
        self.txn
            .get(KeyKind::PickupRecord, root.as_bytes())?
            .map(|b| decode_record(&b))
            .transpose()
    }

    fn put_record(&mut self, root: &str, record: &PersonRecord) {
        self.txn.put(
            KeyKind::PickupRecord,
            root.as_bytes(),
            record.encode_to_vec(),
        );
    }

    fn delete_record(&mut self, root: &str) {
        self.txn.delete(KeyKind::PickupRecord, root.as_bytes());
    }

    fn index_add(&mut self, at: &ListPosition, root: &str) {
        self.txn
            .put(KeyKind::PickupByDate, &index_key(at, root), Vec::new());
    }

    fn index_remove(&mut self, at: &ListPosition, root: &str) {
        self.txn.delete(KeyKind::PickupByDate, &index_key(at, root));
    }
}
