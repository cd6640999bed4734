//! Per-person data keys, kept outside the event stream in the JetStream KV
//! bucket `hub_person_keys` (file storage, one revision per key), wrapped by
//! the key-encryption key derived from the hub secret (see
//! `hub_core::sealing` for the design).
//!
//! A key is created the first time a person's personal data is sealed;
//! concurrent creators race on the KV's create-if-absent, and the loser
//! uses the winner's key. Erasure purges the entry: every ciphertext sealed
//! under it is then unreadable for good.

use async_nats::jetstream::{self, kv};

use crate::eventlog::EventLog;

use hub_core::{
    sealing::{DataKey, KeyWrapper},
    Error,
};

pub const BUCKET: &str = "hub_person_keys";

#[derive(Clone)]
pub struct KeyStore {
    kv: kv::Store,
    wrapper: KeyWrapper,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyStore")
    }
}

fn entry(key_id: &str) -> String {
    format!("dk.{key_id}")
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("the key store did not answer: {e}"))
}

impl KeyStore {
    /// Opens the bucket, creating it when missing, with as many replicas
    /// as the event stream (`HUB_STREAM_REPLICAS`): a key lost with a
    /// server would make that person's names unreadable.
    pub async fn open(log: &EventLog, wrapper: KeyWrapper) -> Result<Self, Error> {
        let js = log.jetstream();
        let replicas = log.settings().replicas;
        let kv = match js.get_key_value(BUCKET).await {
            Ok(kv) => {
                raise_replicas(js, replicas).await;
                kv
            }
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: BUCKET.into(),
                    description: "Per-person data keys, wrapped; purge one to erase the person"
                        .into(),
                    history: 1,
                    storage: jetstream::stream::StorageType::File,
                    num_replicas: replicas,
                    ..Default::default()
                })
                .await
                .map_err(unavailable)?,
        };
        Ok(Self { kv, wrapper })
    }

    /// The data key of `key_id`, if it exists (and was not erased).
    pub async fn get(&self, key_id: &str) -> Result<Option<DataKey>, Error> {
        match self.kv.get(entry(key_id)).await.map_err(unavailable)? {
            Some(wrapped) if !wrapped.is_empty() => {
                Ok(Some(self.wrapper.unwrap(key_id, &wrapped)?))
            }
            _ => Ok(None),
        }
    }

    /// The data key of `key_id`, created when missing.
    pub async fn get_or_create(&self, key_id: &str) -> Result<DataKey, Error> {
        if let Some(k) = self.get(key_id).await? {
            return Ok(k);
        }
        let fresh = DataKey::generate();
        match self
            .kv
            .create(entry(key_id), self.wrapper.wrap(key_id, &fresh).into())
            .await
        {
            Ok(_) => Ok(fresh),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => self
                .get(key_id)
                .await?
                .ok_or_else(|| Error::Internal("data key vanished while being created".into())),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Destroys the data key of `key_id` (erasure).
    pub async fn destroy(&self, key_id: &str) -> Result<(), Error> {
        self.kv.purge(entry(key_id)).await.map_err(unavailable)
    }
}

/// Raises the bucket's replicas to `replicas` (never lowers them); a
/// process without the right to (a projection) leaves that to the agency
/// services.
async fn raise_replicas(js: &jetstream::Context, replicas: usize) {
    let name = format!("KV_{BUCKET}");
    let Ok(mut stream) = js.get_stream(&name).await else {
        return;
    };
    let Ok(info) = stream.info().await else {
        return;
    };
    if info.config.num_replicas >= replicas {
        return;
    }
    let mut config = info.config.clone();
    config.num_replicas = replicas;
    match js.update_stream(config).await {
        Ok(_) => tracing::info!(replicas, "person keys bucket replicas raised"),
        Err(e) => tracing::warn!(error = %e, "could not raise the person keys bucket's replicas"),
    }
}
