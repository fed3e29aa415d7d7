//! Dashboard sessions: a signed cookie naming the API token that signed in,
//! never the token itself, and the CSRF token that goes with it.
//!
//! A session is `<claims>.<signature>`, base64url, HMAC-SHA256 under a key
//! derived from the hub's signing key (so every hub of a cluster accepts
//! it). It holds the token's id, the account and when it ends (12 hours,
//! or the token's own expiry if sooner); the hub checks on each request
//! that the token is still live, so revoking it ends its sessions. The
//! CSRF token is a second HMAC of the session: forms and the dashboard's
//! requests carry it, and a page of another site can neither read nor
//! forge it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::core::AccountId;
use crate::hub::store::TokenId;

/// How long a session lasts at most.
pub const SESSION_SECONDS: i64 = 12 * 3600;

/// What a valid session says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionClaims {
    /// The API token that signed in.
    pub token: TokenId,
    /// Its account.
    pub account: AccountId,
    /// The account's name.
    pub account_name: String,
    /// A read-only token.
    pub read_only: bool,
    /// When it ends (Unix seconds).
    pub expires: i64,
}

/// Signs and checks sessions and their CSRF tokens.
#[derive(Clone)]
pub struct SessionSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for SessionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSigner { .. }")
    }
}

type Mac = Hmac<Sha256>;

impl SessionSigner {
    /// A signer whose key is derived from the hub's `signing_key`.
    pub fn new(signing_key: &[u8; 32]) -> Self {
        let mut mac = Mac::new_from_slice(signing_key).expect("HMAC takes any key size");
        mac.update(b"node-host dashboard session v1");
        Self {
            key: mac.finalize().into_bytes().into(),
        }
    }

    fn mac(&self, purpose: &[u8], data: &[u8]) -> Mac {
        let mut mac = Mac::new_from_slice(&self.key).expect("HMAC takes any key size");
        mac.update(purpose);
        mac.update(&[0]);
        mac.update(data);
        mac
    }

    /// The session cookie's value for `claims`.
    pub fn issue(&self, claims: &SessionClaims) -> String {
        let body = serde_json::to_vec(claims).expect("claims serialize");
        let signature = self.mac(b"session", &body).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&body),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    /// The claims of a session this hub (or its cluster) signed that has
    /// not ended at `now` (Unix seconds).
    pub fn verify(&self, session: &str, now: i64) -> Option<SessionClaims> {
        let (body, signature) = session.split_once('.')?;
        let body = URL_SAFE_NO_PAD.decode(body).ok()?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        self.mac(b"session", &body).verify_slice(&signature).ok()?;
        let claims: SessionClaims = serde_json::from_slice(&body).ok()?;
        (now < claims.expires).then_some(claims)
    }

    /// The CSRF token of `session`.
    pub fn csrf(&self, session: &str) -> String {
        URL_SAFE_NO_PAD.encode(
            self.mac(b"csrf", session.as_bytes())
                .finalize()
                .into_bytes(),
        )
    }

    /// True when `given` is the CSRF token of `session` (compared in
    /// constant time).
    pub fn csrf_ok(&self, session: &str, given: &str) -> bool {
        URL_SAFE_NO_PAD.decode(given).is_ok_and(|given| {
            self.mac(b"csrf", session.as_bytes())
                .verify_slice(&given)
                .is_ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> SessionClaims {
        SessionClaims {
            token: 3,
            account: 7,
            account_name: "alice".into(),
            read_only: false,
            expires: 1_000,
        }
    }

    #[test]
    fn a_session_verifies_until_it_ends_and_only_with_its_key() {
        let signer = SessionSigner::new(&[1; 32]);
        let session = signer.issue(&claims());
        assert_eq!(signer.verify(&session, 999), Some(claims()));
        assert_eq!(signer.verify(&session, 1_000), None, "ended");
        assert_eq!(SessionSigner::new(&[2; 32]).verify(&session, 1), None);
        let (body, signature) = session.split_once('.').unwrap();
        let mut forged = claims();
        forged.account = 8;
        let forged_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(
            signer.verify(&format!("{forged_body}.{signature}"), 1),
            None
        );
        assert_eq!(signer.verify(body, 1), None, "no signature");
        assert_eq!(signer.verify("", 1), None);
    }

    #[test]
    fn a_csrf_token_belongs_to_one_session() {
        let signer = SessionSigner::new(&[1; 32]);
        let session = signer.issue(&claims());
        let csrf = signer.csrf(&session);
        assert!(signer.csrf_ok(&session, &csrf));
        let mut other = claims();
        other.token = 4;
        assert!(!signer.csrf_ok(&signer.issue(&other), &csrf));
        assert!(!signer.csrf_ok(&session, ""));
        assert!(!signer.csrf_ok(&session, "not base64 !"));
    }
}
