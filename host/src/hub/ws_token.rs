//! Short-lived WebSocket tokens: HMAC-SHA256 signed, URL-safe, bound to an
//! account, the API token that registered, and the node whose registration
//! issued them.
//!
//! The Python worker pastes the token into the URL without encoding it, so a
//! token is base64url without padding: `<claims>.<signature>`. It proves the
//! account at connect time; the hub then re-checks the API token it names
//! while the connection lasts, so a revoked token closes it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// How long a token may be used to connect: Hurozo's documented 60 s.
pub const WS_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsClaims {
    /// The account the connection belongs to.
    pub account: i64,
    /// The id of the API token that registered.
    pub api_token: i64,
    /// The node whose registration issued the token.
    pub node: String,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WsTokenError {
    /// Not in the token format.
    #[error("the WebSocket token is malformed")]
    Malformed,
    /// The signature does not match: forged, or signed by another hub.
    #[error("the WebSocket token's signature is invalid")]
    BadSignature,
    /// Older than [`WS_TOKEN_LIFETIME`].
    #[error("the WebSocket token has expired; register again for a new one")]
    Expired,
}

/// Signs and checks tokens with the hub's key.
#[derive(Clone)]
pub struct WsTokenSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for WsTokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WsTokenSigner { .. }")
    }
}

impl WsTokenSigner {
    /// A signer with `key`.
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self, claims: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key size");
        mac.update(claims);
        mac.finalize().into_bytes().to_vec()
    }

    /// A token for `claims`, valid until [`WS_TOKEN_LIFETIME`] from `now`.
    pub fn issue(&self, claims: &WsClaims, now: SystemTime) -> String {
        let expires = seconds(now) + WS_TOKEN_LIFETIME.as_secs();
        let mut body = Vec::with_capacity(24 + claims.node.len());
        body.extend_from_slice(&claims.account.to_be_bytes());
        body.extend_from_slice(&claims.api_token.to_be_bytes());
        body.extend_from_slice(&expires.to_be_bytes());
        body.extend_from_slice(claims.node.as_bytes());
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&body),
            URL_SAFE_NO_PAD.encode(self.mac(&body))
        )
    }

    /// The claims of a token that this hub signed and that has not expired at `now`.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<WsClaims, WsTokenError> {
        let (body, signature) = token.split_once('.').ok_or(WsTokenError::Malformed)?;
        let body = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| WsTokenError::Malformed)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| WsTokenError::Malformed)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key size");
        mac.update(&body);
        mac.verify_slice(&signature)
            .map_err(|_| WsTokenError::BadSignature)?;
        if body.len() < 24 {
            return Err(WsTokenError::Malformed);
        }
        let (account, rest) = body.split_at(8);
        let (api_token, rest) = rest.split_at(8);
        let (expires, node) = rest.split_at(8);
        let account = i64::from_be_bytes(account.try_into().expect("8 bytes"));
        let api_token = i64::from_be_bytes(api_token.try_into().expect("8 bytes"));
        let expires = u64::from_be_bytes(expires.try_into().expect("8 bytes"));
        if seconds(now) > expires {
            return Err(WsTokenError::Expired);
        }
        let node = String::from_utf8(node.to_vec()).map_err(|_| WsTokenError::Malformed)?;
        Ok(WsClaims {
            account,
            api_token,
            node,
        })
    }
}

fn seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> WsClaims {
        WsClaims {
            account: 7,
            api_token: 3,
            node: "hello".into(),
        }
    }

    #[test]
    fn a_fresh_token_verifies_and_is_url_safe() {
        let signer = WsTokenSigner::new([1; 32]);
        let now = SystemTime::now();
        let token = signer.issue(&claims(), now);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        );
        assert_eq!(signer.verify(&token, now), Ok(claims()));
        assert_eq!(
            signer.verify(&token, now + Duration::from_secs(59)),
            Ok(claims())
        );
    }

    #[test]
    fn expired_forged_and_garbled_tokens_are_refused() {
        let signer = WsTokenSigner::new([1; 32]);
        let now = SystemTime::now();
        let token = signer.issue(&claims(), now);
        assert_eq!(
            signer.verify(&token, now + WS_TOKEN_LIFETIME + Duration::from_secs(2)),
            Err(WsTokenError::Expired)
        );
        let other_hub = WsTokenSigner::new([2; 32]);
        assert_eq!(
            other_hub.verify(&token, now),
            Err(WsTokenError::BadSignature)
        );
        let (_, signature) = token.split_once('.').unwrap();
        let other_account = WsClaims {
            account: 8,
            api_token: 3,
            node: "hello".into(),
        };
        let (forged_body, _) = signer
            .issue(&other_account, now)
            .split_once('.')
            .map(|(b, s)| (b.to_owned(), s.to_owned()))
            .unwrap();
        assert_eq!(
            signer.verify(&format!("{forged_body}.{signature}"), now),
            Err(WsTokenError::BadSignature)
        );
        assert_eq!(signer.verify("no-dot", now), Err(WsTokenError::Malformed));
        assert_eq!(signer.verify("a+b.c", now), Err(WsTokenError::Malformed));
    }
}
