//! Sign-in sessions, kept on the server: the browser holds only an opaque
//! session id (cookie `hub_session`), never the bearer token behind it.
//! A session ends after [`SessionLimits::idle`] without a request, after
//! [`SessionLimits::absolute`] whatever happens, or at sign-out, and is
//! then gone from the server: a copied cookie is worth nothing.
//!
//! Each session has its own CSRF token, sent in every form the signed-in
//! pages hold and checked on every POST; the sign-in form, before there
//! is a session, uses a double-submitted token (a cookie and a field that
//! must match). Failed sign-ins are limited per client address.
//!
//! Sessions live in this process's memory: with several dashboard
//! replicas, route each client to one (session affinity), and a restart
//! signs everyone out.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use rand::RngCore;

/// How long sessions last.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Ends a session this long after its last request.
    pub idle: Duration,
    /// Ends a session this long after sign-in, however active.
    pub absolute: Duration,
}

/// One signed-in person.
#[derive(Clone)]
pub struct Session {
    pub token: String,
    /// The ID token of a sign-in at the identity provider (to end its
    /// session too at sign-out).
    pub id_token: Option<String>,
    pub csrf: String,
    created: Instant,
    last_seen: Instant,
}

/// Every session of this process.
pub struct Sessions {
    limits: SessionLimits,
    by_id: Mutex<HashMap<String, Session>>,
}

/// A random 256-bit value, hex: session ids and CSRF tokens.
pub fn random_id() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

impl Sessions {
    pub fn new(limits: SessionLimits) -> Self {
        Self {
            limits,
            by_id: Mutex::default(),
        }
    }

    /// A new session for `token`: its id (for the cookie).
    pub fn start(&self, token: String, id_token: Option<String>) -> String {
        let id = random_id();
        let now = Instant::now();
        let mut all = self.by_id.lock().expect("sessions lock");
        // Forget the ended ones as new ones start, so memory stays bounded
        // by the sessions alive.
        all.retain(|_, s| self.alive(s, now));
        all.insert(
            id.clone(),
            Session {
                token,
                id_token,
                csrf: random_id(),
                created: now,
                last_seen: now,
            },
        );
        id
    }

    fn alive(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last_seen) < self.limits.idle
            && now.duration_since(s.created) < self.limits.absolute
    }

    /// The live session `id`, its idle clock restarted; an ended one is
    /// removed.
    pub fn get(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut all = self.by_id.lock().expect("sessions lock");
        let alive = all.get(id).map(|s| self.alive(s, now))?;
        if !alive {
            all.remove(id);
            return None;
        }
        let s = all.get_mut(id)?;
        s.last_seen = now;
        Some(s.clone())
    }

    /// Ends session `id` (sign-out).
    pub fn end(&self, id: &str) {
        self.by_id.lock().expect("sessions lock").remove(id);
    }
}

/// Failed sign-ins allowed per client address in [`SIGN_IN_WINDOW`].
pub const SIGN_IN_ATTEMPTS: u32 = 5;
/// The window of [`SIGN_IN_ATTEMPTS`].
pub const SIGN_IN_WINDOW: Duration = Duration::from_secs(60);

/// Failed sign-ins per client address.
#[derive(Default)]
pub struct SignInLimit {
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl SignInLimit {
    /// `Err(seconds to wait)` when `addr` has failed too often lately.
    pub fn check(&self, addr: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let mut all = self.failures.lock().expect("limit lock");
        all.retain(|_, (since, _)| now.duration_since(*since) < SIGN_IN_WINDOW);
        match all.get(&addr) {
            Some((since, n)) if *n >= SIGN_IN_ATTEMPTS => {
                Err((SIGN_IN_WINDOW - now.duration_since(*since)).as_secs() + 1)
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed sign-in from `addr`.
    pub fn failed(&self, addr: IpAddr) {
        let now = Instant::now();
        let mut all = self.failures.lock().expect("limit lock");
        let entry = all.entry(addr).or_insert((now, 0));
        entry.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_when_idle_at_their_age_limit_or_at_sign_out() {
        let idle = Sessions::new(SessionLimits {
            idle: Duration::from_millis(50),
            absolute: Duration::from_secs(60),
        });
        let id = idle.start("t".into(), None);
        assert_eq!(idle.get(&id).unwrap().token, "t");
        std::thread::sleep(Duration::from_millis(80));
        assert!(idle.get(&id).is_none(), "idle too long");

        let old = Sessions::new(SessionLimits {
            idle: Duration::from_secs(60),
            absolute: Duration::from_millis(100),
        });
        let id = old.start("t".into(), None);
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(20));
            assert!(old.get(&id).is_some());
        }
        std::thread::sleep(Duration::from_millis(80));
        assert!(old.get(&id).is_none(), "too old, however active");

        let id = old.start("t".into(), None);
        old.end(&id);
        assert!(old.get(&id).is_none());
        assert!(old.get("not-a-session").is_none());
    }

    #[test]
    fn ids_are_random_and_compared_whole() {
        assert_ne!(random_id(), random_id());
        assert_eq!(random_id().len(), 64);
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd") && !same("abc", "ab"));
    }

    #[test]
    fn sign_ins_are_limited_per_address() {
        let limit = SignInLimit::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..SIGN_IN_ATTEMPTS {
            assert!(limit.check(a).is_ok());
            limit.failed(a);
        }
        assert!(limit.check(a).unwrap_err() <= 61);
        assert!(limit.check(b).is_ok());
    }
}
