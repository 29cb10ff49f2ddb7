//! [`Reporters`]: who may report, each by a name and a bearer token.

use std::{fmt, str::FromStr};

use http::{HeaderMap, header::AUTHORIZATION};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use crate::{
    error::{Error, Result},
    event::Source,
};

/// The environment variable [`Reporters::from_env`] reads.
pub const REPORTERS_ENV: &str = "IDP_ANALYTICS_REPORTERS";

/// The services allowed to report events, each with a name and a bearer token.
///
/// A reporter's name is recorded in the `source` column of every event it sends. Only the
/// BLAKE3 digest of each token is kept, and a presented token is found by comparing its
/// digest with every stored one in constant time, so neither the tokens nor the time taken
/// tell anything about them. One name may have several tokens (to rotate a token without
/// downtime); a token belongs to one name only.
///
/// ```
/// use idp_analytics::reporter::Reporters;
///
/// let reporters = Reporters::new()
///     .with("billing", "b1ll1ng-s3cret")?
///     .with("search", "s3arch-s3cret")?;
/// assert_eq!(reporters.len(), 2);
///
/// // The same, as `IDP_ANALYTICS_REPORTERS` holds it:
/// let parsed: Reporters = "billing:b1ll1ng-s3cret, search:s3arch-s3cret".parse()?;
/// assert_eq!(parsed.names().collect::<Vec<_>>(), ["billing", "search"]);
/// # Ok::<(), idp_analytics::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Reporters {
    entries: Vec<Entry>,
}

#[derive(Clone)]
struct Entry {
    source: Source,
    digest: [u8; 32],
}

impl fmt::Debug for Reporters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reporters")
            .field("names", &self.names().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A token's BLAKE3 digest: one-way like SHA-256, and for a token of a few dozen bytes
/// about a third of its cost where the processor has no SHA instructions.
fn digest(token: &[u8]) -> [u8; 32] {
    *blake3::hash(token).as_bytes()
}

/// A digest as four machine words.
fn words(digest: &[u8; 32]) -> [u64; 4] {
    let (words, []) = digest.as_chunks::<8>() else {
        unreachable!("32 bytes are four words")
    };
    std::array::from_fn(|w| u64::from_ne_bytes(words[w]))
}

/// Whether `token` is an RFC 6750 `b64token`: what a `Bearer` credential may hold. Such a
/// token is printable ASCII.
fn is_b64token(token: &[u8]) -> bool {
    let end = token
        .iter()
        .rposition(|&c| c != b'=')
        .map_or(0, |at| at + 1);
    let body = &token[..end];
    !body.is_empty()
        && body.iter().all(|&c| {
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// `bytes` without the spaces at either end.
fn trim_spaces(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&c| c != b' ').unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&c| c != b' ')
        .map_or(start, |at| at + 1);
    &bytes[start..end]
}

impl Reporters {
    /// No reporters: every request is refused until some are added.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a reporter.
    ///
    /// The name is recorded as the events' source: 1 to
    /// [`MAX_SOURCE_LEN`](crate::event::MAX_SOURCE_LEN) bytes, no control characters. The
    /// token is what the reporter sends as `Authorization: Bearer <token>`: letters, digits
    /// and `-._~+/`, optionally followed by `=` padding. Use a long random token (32 bytes
    /// or more, base64- or hex-encoded). A token already given to a reporter is refused.
    pub fn with(mut self, name: &str, token: &str) -> Result<Self> {
        let source = Source::new(name)
            .map_err(|_| Error::Config(format!("reporter name {name:?} is not a valid source")))?;
        if !is_b64token(token.as_bytes()) {
            return Err(Error::Config(format!(
                "the token of reporter {name:?} is empty or has characters a bearer token cannot carry"
            )));
        }
        let digest = digest(token.as_bytes());
        if let Some(other) = self.entries.iter().find(|e| e.digest == digest) {
            return Err(Error::Config(format!(
                "reporters {:?} and {name:?} have the same token",
                other.source.as_str()
            )));
        }
        self.entries.push(Entry { source, digest });
        Ok(self)
    }

    /// Reads reporters from the [`REPORTERS_ENV`] environment variable
    /// (`IDP_ANALYTICS_REPORTERS`), in the form [`FromStr`](#impl-FromStr-for-Reporters)
    /// takes.
    pub fn from_env() -> Result<Self> {
        Self::from_env_var(REPORTERS_ENV)
    }

    /// Reads reporters from the environment variable `var`, in the form
    /// [`FromStr`](#impl-FromStr-for-Reporters) takes. An unset or empty variable is an error.
    pub fn from_env_var(var: &str) -> Result<Self> {
        match std::env::var(var) {
            Ok(spec) => spec
                .parse()
                .map_err(|e| Error::Config(format!("{var}: {e}"))),
            Err(std::env::VarError::NotPresent) => Err(Error::Config(format!("{var} is not set"))),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(Error::Config(format!("{var} is not valid UTF-8")))
            }
        }
    }

    /// How many tokens are configured.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no reporter is configured (every request is then refused).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The reporters' names, in the order they were added; a name with several tokens
    /// appears once per token.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.source.as_str())
    }

    /// The reporter whose token the request carries as `Authorization: Bearer <token>`.
    ///
    /// `None` for a missing, repeated or malformed header and for an unknown token alike.
    /// Every stored digest is compared, whichever matches.
    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Option<&Source> {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        // Read as bytes: a scheme equal to `bearer` and a `b64token` are ASCII, so nothing
        // else needs checking as text.
        let value = value.as_bytes();
        let space = value.iter().position(|&c| c == b' ')?;
        let (scheme, token) = (&value[..space], &value[space + 1..]);
        if !scheme.eq_ignore_ascii_case(b"bearer") {
            return None;
        }
        let token = trim_spaces(token);
        if !is_b64token(token) {
            return None;
        }
        self.find(token)
    }

    fn find(&self, token: &[u8]) -> Option<&Source> {
        let presented = words(&digest(token));
        let mut found = Choice::from(0);
        let mut index = 0u64;
        for (i, entry) in self.entries.iter().enumerate() {
            // Eight bytes at a time: the words' differences folded into one, compared
            // with zero in constant time.
            let stored = words(&entry.digest);
            let diff = (0..4).fold(0, |acc, w| acc | (stored[w] ^ presented[w]));
            let same = diff.ct_eq(&0);
            index.conditional_assign(&(i as u64), same);
            found |= same;
        }
        let found: bool = found.into();
        found.then(|| &self.entries[index as usize].source)
    }
}

impl FromStr for Reporters {
    type Err = Error;

    /// Parses `name:token` pairs separated by commas, such as
    /// `billing:b1ll1ng-s3cret,search:s3arch-s3cret`. Spaces around names and tokens and a
    /// trailing comma are allowed; at least one reporter is required. Errors name the
    /// reporter or the entry's position, never a token.
    fn from_str(spec: &str) -> Result<Self> {
        let mut reporters = Self::new();
        for (position, entry) in spec.split(',').enumerate() {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let Some((name, token)) = entry.split_once(':') else {
                return Err(Error::Config(format!(
                    "reporter entry {} is not of the form name:token",
                    position + 1
                )));
            };
            reporters = reporters.with(name.trim(), token.trim())?;
        }
        if reporters.is_empty() {
            return Err(Error::Config(
                "no reporters: expected name:token pairs separated by commas".into(),
            ));
        }
        Ok(reporters)
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        map
    }

    fn who<'a>(reporters: &'a Reporters, values: &[&[u8]]) -> Option<&'a str> {
        reporters.authenticate(&headers(values)).map(Source::as_str)
    }

    fn two() -> Reporters {
        Reporters::new()
            .with("billing", "token-one")
            .unwrap()
            .with("search", "token+two/==")
            .unwrap()
    }

    #[test]
    fn each_token_names_its_reporter() {
        let r = two();
        assert_eq!(who(&r, &[b"Bearer token-one"]), Some("billing"));
        assert_eq!(who(&r, &[b"Bearer token+two/=="]), Some("search"));
        assert_eq!(who(&r, &[b"bearer token-one"]), Some("billing"));
        assert_eq!(who(&r, &[b"BEARER   token-one  "]), Some("billing"));
    }

    #[test]
    fn anything_else_is_refused() {
        let r = two();
        for value in [
            &b"Bearer token-on"[..],
            b"Bearer token-one2",
            b"Bearer TOKEN-ONE",
            b"Bearer",
            b"Bearer ",
            b"Bearertoken-one",
            b"Basic token-one",
            b"token-one",
            b"Bearer token one",
            b"Bearer token-one\t",
            b"Bearer =token-one",
            b"Bearer \xfftoken",
        ] {
            assert_eq!(
                who(&r, &[value]),
                None,
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
        assert_eq!(who(&r, &[]), None);
        // Two credentials are one too many, even if both are good.
        assert_eq!(who(&r, &[b"Bearer token-one", b"Bearer token-one"]), None);
        assert_eq!(who(&Reporters::new(), &[b"Bearer token-one"]), None);
    }

    #[test]
    fn a_name_may_have_several_tokens_but_a_token_one_name() {
        let r = Reporters::new()
            .with("billing", "old")
            .unwrap()
            .with("billing", "new")
            .unwrap();
        assert_eq!(who(&r, &[b"Bearer old"]), Some("billing"));
        assert_eq!(who(&r, &[b"Bearer new"]), Some("billing"));
        let err = r.with("search", "old").unwrap_err().to_string();
        assert!(
            err.contains("\"billing\" and \"search\" have the same token"),
            "{err}"
        );
        assert!(!err.contains("old"), "{err}");
    }

    #[test]
    fn names_and_tokens_are_checked() {
        assert!(Reporters::new().with("", "t").is_err());
        assert!(Reporters::new().with("a\nb", "t").is_err());
        assert!(Reporters::new().with(&"n".repeat(65), "t").is_err());
        for bad in ["", "a b", "tok\u{e9}n", "=", "a=b", "a,b", "a:b"] {
            let err = Reporters::new()
                .with("billing", bad)
                .unwrap_err()
                .to_string();
            assert!(err.contains("\"billing\""), "{err}");
        }
        assert!(Reporters::new().with("billing", "aGVsbG8=").is_ok());
    }

    #[test]
    fn parses_the_environment_form() {
        let r: Reporters = " billing : token-one ,search:token+two/==,"
            .parse()
            .unwrap();
        assert_eq!(r.names().collect::<Vec<_>>(), ["billing", "search"]);
        assert_eq!(who(&r, &[b"Bearer token-one"]), Some("billing"));
        assert_eq!(who(&r, &[b"Bearer token+two/=="]), Some("search"));

        let err = "billing:token-one,search".parse::<Reporters>().unwrap_err();
        assert!(err.to_string().contains("entry 2"), "{err}");
        assert!("".parse::<Reporters>().is_err());
        assert!(" , ".parse::<Reporters>().is_err());
        assert!("billing:".parse::<Reporters>().is_err());
        assert!(":token".parse::<Reporters>().is_err());
        let err = "billing:s3cr3t v4lue"
            .parse::<Reporters>()
            .unwrap_err()
            .to_string();
        assert!(
            !err.contains("s3cr3t"),
            "an error never shows the token: {err}"
        );
    }

    #[test]
    fn reads_the_variable_it_is_given() {
        // A variable no other test touches.
        let var = "IDP_ANALYTICS_TEST_REPORTERS_UNSET";
        let err = Reporters::from_env_var(var).unwrap_err().to_string();
        assert!(err.contains("is not set"), "{err}");
    }

    #[test]
    fn debug_shows_names_only() {
        let shown = format!("{:?}", two());
        assert!(
            shown.contains("billing") && shown.contains("search"),
            "{shown}"
        );
        assert!(!shown.contains("token"), "{shown}");
    }
}
