//! Bearer tokens: JWTs signed with HMAC-SHA256 by a secret every instance shares, so any
//! instance verifies what any other issued and nothing is stored.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The `iss` claim of every token this registry issues.
pub const ISSUER: &str = "berth-registry";
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 60;

/// Why a bearer token was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not three base64url parts of JSON.
    #[error("verifying token: malformed ({0})")]
    Malformed(&'static str),
    /// Signed with something other than HS256 (including `none`).
    #[error("verifying token: algorithm {0:?} is not accepted (HS256 only)")]
    Algorithm(String),
    /// The signature does not match: another secret, or altered claims.
    #[error("verifying token: bad signature")]
    Signature,
    /// `exp` is in the past (beyond the leeway).
    #[error("verifying token: expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("verifying token: not valid yet")]
    NotYetValid,
    /// Issued for another service.
    #[error("verifying token: audience is not {0:?}")]
    Audience(String),
    /// Issued by someone else.
    #[error("verifying token: issuer is not {ISSUER:?}")]
    Issuer,
}

/// One grant in a token: `actions` on the resource `type:name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Repository name (or `catalog`).
    pub name: String,
    /// Granted actions.
    pub actions: Vec<String>,
}

/// The claims of a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// The user name; empty for an anonymous token.
    #[serde(default)]
    pub sub: String,
    /// Audience: the service (a string, or an array of strings when others issued it).
    pub aud: Value,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Not before, Unix seconds.
    pub nbf: u64,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Unique id.
    pub jti: String,
    /// What the token grants.
    #[serde(default)]
    pub access: Vec<AccessEntry>,
}

/// Signs and verifies tokens for one service with one secret.
pub struct TokenKey {
    secret: Vec<u8>,
    service: String,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl TokenKey {
    /// A key from a secret and the service name that tokens are issued for.
    pub fn new(secret: Vec<u8>, service: &str) -> TokenKey {
        TokenKey {
            secret,
            service: service.to_string(),
        }
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.secret).expect("HMAC takes keys of any length")
    }

    /// Issues a token for `subject` (empty: anonymous) granting `access`, valid from `now` for
    /// `ttl` seconds.
    pub fn sign(&self, subject: &str, access: Vec<AccessEntry>, now: u64, ttl: u64) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = Claims {
            iss: ISSUER.into(),
            sub: subject.into(),
            aud: Value::String(self.service.clone()),
            exp: now + ttl,
            nbf: now,
            iat: now,
            jti: hex::encode(rand::random::<[u8; 16]>()),
            access,
        };
        let body = serde_json::to_vec(&claims).expect("claims serialise");
        let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(body));
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{sig}")
    }

    /// Checks a token's signature, algorithm, issuer, audience and validity window at `now`.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let mut parts = token.trim().split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("not three dot-separated parts"));
        };
        let header: Value = decode_json(h, "header")?;
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
        if alg != "HS256" {
            return Err(TokenError::Algorithm(alg.to_string()));
        }
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| TokenError::Malformed("signature is not base64url"))?;
        let mut mac = self.mac();
        mac.update(h.as_bytes());
        mac.update(b".");
        mac.update(c.as_bytes());
        mac.verify_slice(&sig).map_err(|_| TokenError::Signature)?;
        let claims: Claims = decode_json(c, "claims")?;
        if claims.iss != ISSUER {
            return Err(TokenError::Issuer);
        }
        let aud_ok = match &claims.aud {
            Value::String(a) => *a == self.service,
            Value::Array(list) => list.iter().any(|a| a.as_str() == Some(&self.service)),
            _ => false,
        };
        if !aud_ok {
            return Err(TokenError::Audience(self.service.clone()));
        }
        if now > claims.exp.saturating_add(LEEWAY_SECS) {
            return Err(TokenError::Expired);
        }
        if claims.nbf > now.saturating_add(LEEWAY_SECS) {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(
    part: &str,
    what: &'static str,
) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed(what))?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        TokenKey::new(vec![7; 32], "reg")
    }

    fn entry(name: &str, actions: &[&str]) -> AccessEntry {
        AccessEntry {
            kind: "repository".into(),
            name: name.into(),
            actions: actions.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn signed_tokens_verify_with_the_same_secret_only() {
        let t = key().sign("alice", vec![entry("a/b", &["pull"])], 1000, 300);
        let c = key().verify(&t, 1100).unwrap();
        assert_eq!(c.sub, "alice");
        assert_eq!(c.access, vec![entry("a/b", &["pull"])]);
        assert_eq!((c.iat, c.nbf, c.exp), (1000, 1000, 1300));
        assert_eq!(c.jti.len(), 32);
        let other = TokenKey::new(vec![8; 32], "reg");
        assert_eq!(other.verify(&t, 1100).unwrap_err(), TokenError::Signature);
        let svc = TokenKey::new(vec![7; 32], "other");
        assert_eq!(
            svc.verify(&t, 1100).unwrap_err(),
            TokenError::Audience("other".into())
        );
    }

    #[test]
    fn validity_window_has_a_minute_of_leeway() {
        let t = key().sign("", vec![], 1000, 300);
        assert!(key().verify(&t, 1360).is_ok());
        assert_eq!(key().verify(&t, 1361).unwrap_err(), TokenError::Expired);
        assert!(key().verify(&t, 940).is_ok());
        assert_eq!(key().verify(&t, 939).unwrap_err(), TokenError::NotYetValid);
    }

    #[test]
    fn altered_claims_and_other_algorithms_are_refused() {
        let t = key().sign("bob", vec![entry("x", &["pull"])], 1000, 300);
        let parts: Vec<&str> = t.split('.').collect();
        let mut claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims["access"][0]["actions"] = serde_json::json!(["pull", "push"]);
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            parts[2]
        );
        assert_eq!(
            key().verify(&forged, 1000).unwrap_err(),
            TokenError::Signature
        );
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            parts[1]
        );
        assert_eq!(
            key().verify(&none, 1000).unwrap_err(),
            TokenError::Algorithm("none".into())
        );
        assert!(matches!(
            key().verify("abc", 1000),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            key().verify("a.b.c.d", 1000),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn array_audiences_are_accepted() {
        let k = key();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = serde_json::json!({"iss": ISSUER, "sub": "x", "aud": ["a", "reg"],
            "exp": 2000, "nbf": 1000, "iat": 1000, "jti": "j", "access": []});
        let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut mac = k.mac();
        mac.update(input.as_bytes());
        let t = format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        );
        assert_eq!(k.verify(&t, 1500).unwrap().sub, "x");
    }
}
