//! A cap on the live streams one caller holds open at once (pick-up
//! watches, the dashboard's live pages): each holds a task, a channel and
//! a subscription to every change, so one token must not be able to open
//! thousands. A caller past the cap gets `RESOURCE_EXHAUSTED` naming it;
//! a stream's slot is given back when the stream ends, however it ends.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use hub_core::{auth::Caller, Error};

/// Live streams a caller may hold open at once, by default
/// (`HUB_MAX_STREAMS_PER_CALLER`).
pub const DEFAULT_STREAMS_PER_CALLER: usize = 4;

/// The open streams of each caller of one process.
#[derive(Clone, Debug)]
pub struct StreamQuota {
    what: &'static str,
    per_caller: usize,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

/// One open stream; dropping it gives the slot back.
#[derive(Debug)]
pub struct StreamSlot {
    open: Arc<Mutex<HashMap<String, usize>>>,
    key: String,
}

impl StreamQuota {
    /// At most `per_caller` open `what`s (e.g. "pick-up watches") each.
    pub fn new(what: &'static str, per_caller: usize) -> Self {
        Self {
            what,
            per_caller,
            open: Arc::default(),
        }
    }

    /// A slot for one more stream of `caller`, or `ResourceExhausted`.
    pub fn acquire(&self, caller: &Caller) -> Result<StreamSlot, Error> {
        let key = format!("{}\0{}", caller.org_code, caller.user_id);
        let mut open = self.open.lock().expect("quota lock");
        let n = open.entry(key.clone()).or_default();
        if *n >= self.per_caller {
            return Err(Error::ResourceExhausted(format!(
                "this caller already holds {} open {} (the most allowed at once); \
                 close one (another tab or window) and try again",
                *n, self.what
            )));
        }
        *n += 1;
        Ok(StreamSlot {
            open: self.open.clone(),
            key,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("quota lock");
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_core::auth::{PartnershipScope, Role};

    fn caller(user: &str) -> Caller {
        Caller {
            user_id: user.into(),
            role: Role::CaratWorker,
            org_code: "LEI".into(),
            partnerships: PartnershipScope::All,
        }
    }

    #[test]
    fn each_caller_gets_its_own_cap_and_slots_come_back() {
        let quota = StreamQuota::new("pick-up watches", 2);
        let a1 = quota.acquire(&caller("a")).unwrap();
        let _a2 = quota.acquire(&caller("a")).unwrap();
        let err = quota.acquire(&caller("a")).unwrap_err();
        assert!(
            matches!(err, Error::ResourceExhausted(ref m) if m.contains("2 open pick-up watches"))
        );
        let _b = quota.acquire(&caller("b")).unwrap();
        drop(a1);
        let _a3 = quota.acquire(&caller("a")).unwrap();
    }
}
