//! Who made a request: [`AccountId`], the [`ExtractAccount`] trait and its built-in
//! extractors.
//!
//! The [`AnalyticsLayer`](crate::AnalyticsLayer) asks an extractor for the account of each
//! request. The default, [`FromAccountId`], reads the [`AccountId`] an authentication
//! middleware put in the request extensions. Others are one line:
//!
//! - [`from_extension`]: read an extension type the application already has, such as its
//!   own `CurrentUser`;
//! - [`from_header`]: read a header set by a trusted internal hop (`x-account-id`);
//! - any closure `Fn(&http::request::Parts) -> Option<u64>`.
//!
//! Extractors see the request head ([`Parts`]: method, URI, version, headers and
//! extensions), never the body.
//!
//! ```
//! use http::request::Parts;
//! use idp_analytics::{AccountId, AnalyticsLayer, account};
//!
//! #[derive(Clone)]
//! struct CurrentUser {
//!     account_id: u64,
//! }
//!
//! # fn run(analytics: idp_analytics::Analytics) -> idp_analytics::Result<()> {
//! // The app's own extension type.
//! let layer = AnalyticsLayer::builder(analytics.clone())
//!     .with_account(account::from_extension::<CurrentUser>(|user| Some(user.account_id)))
//!     .build()?;
//!
//! // A header set by a trusted proxy in front of the service.
//! let layer = AnalyticsLayer::builder(analytics.clone())
//!     .with_account(account::from_header("x-account-id"))
//!     .build()?;
//!
//! // A closure over the request head; this one falls back to a header.
//! let header = account::from_header("x-account-id");
//! let layer = AnalyticsLayer::builder(analytics)
//!     .with_account(move |parts: &Parts| {
//!         use idp_analytics::ExtractAccount;
//!         parts
//!             .extensions
//!             .get::<AccountId>()
//!             .map(|id| id.0)
//!             .or_else(|| header.extract_account(parts))
//!     })
//!     .build()?;
//! # let _ = layer;
//! # Ok(())
//! # }
//! ```
//!
//! The account can also be known only once the handler has run (a login route): an
//! [`AccountId`] in the *response* extensions takes precedence over the extractor's answer.

use std::{fmt, marker::PhantomData};

use http::{HeaderName, request::Parts};

/// The account a request was made by.
///
/// An authentication middleware puts it in the request extensions; the default extractor,
/// [`FromAccountId`], reads it from there. A handler that learns the account itself (a login
/// route) puts it in the response extensions, and the layer records the request under it.
///
/// ```
/// use idp_analytics::AccountId;
///
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(AccountId(42));
/// assert_eq!(request.extensions().get::<AccountId>(), Some(&AccountId(42)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId(pub u64);

impl From<u64> for AccountId {
    fn from(id: u64) -> Self {
        Self(id)
    }
}

impl From<AccountId> for u64 {
    fn from(id: AccountId) -> Self {
        id.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Finds the account a request was made by, from the request head only.
///
/// Implemented for every closure `Fn(&http::request::Parts) -> Option<u64>`, so a closure
/// passed where an extractor is expected works as one; write the argument's type
/// (`|parts: &Parts| ...`) so that the compiler knows it.
///
/// The layer splits the request into its head and body (no copy, no allocation), calls the
/// extractor with the head, and puts the request back together before the inner service
/// sees it. Returning `None` means the request has no account.
pub trait ExtractAccount: Send + Sync + 'static {
    /// The account of the request with this head, if it has one.
    fn extract_account(&self, request: &Parts) -> Option<u64>;
}

impl<F> ExtractAccount for F
where
    F: Fn(&Parts) -> Option<u64> + Send + Sync + 'static,
{
    fn extract_account(&self, request: &Parts) -> Option<u64> {
        self(request)
    }
}

/// The default extractor: the [`AccountId`] in the request extensions.
#[derive(Clone, Copy, Debug, Default)]
pub struct FromAccountId;

impl ExtractAccount for FromAccountId {
    fn extract_account(&self, request: &Parts) -> Option<u64> {
        request.extensions.get::<AccountId>().map(|id| id.0)
    }
}

/// An extractor that reads an extension of type `T` the application already puts in the
/// request, and maps it to an account with `f`.
///
/// ```
/// use idp_analytics::{ExtractAccount, account};
///
/// #[derive(Clone)]
/// struct Session {
///     account: Option<u64>,
/// }
///
/// let extract = account::from_extension::<Session>(|session| session.account);
///
/// let (mut parts, ()) = http::Request::new(()).into_parts();
/// assert_eq!(extract.extract_account(&parts), None);
/// parts.extensions.insert(Session { account: Some(7) });
/// assert_eq!(extract.extract_account(&parts), Some(7));
/// ```
pub fn from_extension<T>(
    f: impl Fn(&T) -> Option<u64> + Send + Sync + 'static,
) -> FromExtension<T, impl Fn(&T) -> Option<u64> + Send + Sync + 'static>
where
    T: Send + Sync + 'static,
{
    FromExtension {
        f,
        _type: PhantomData,
    }
}

/// The extractor made by [`from_extension`].
pub struct FromExtension<T, F> {
    f: F,
    _type: PhantomData<fn(&T)>,
}

impl<T, F> fmt::Debug for FromExtension<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FromExtension")
            .field(&std::any::type_name::<T>())
            .finish()
    }
}

impl<T, F> ExtractAccount for FromExtension<T, F>
where
    T: Send + Sync + 'static,
    F: Fn(&T) -> Option<u64> + Send + Sync + 'static,
{
    fn extract_account(&self, request: &Parts) -> Option<u64> {
        request.extensions.get::<T>().and_then(&self.f)
    }
}

/// An extractor that reads the account from a request header, for requests that come
/// through a trusted internal hop (a gateway that authenticated the caller and says so).
///
/// The value must be 1 to 20 ASCII digits, without sign or spaces, that fit in a `u64`;
/// anything else, and a header sent more than once, is no account. Never use it on a
/// header that clients can set themselves.
///
/// ```
/// use idp_analytics::{ExtractAccount, account};
///
/// let extract = account::from_header("x-account-id");
/// let parts = |value: &str| http::Request::builder()
///     .header("x-account-id", value)
///     .body(())
///     .unwrap()
///     .into_parts()
///     .0;
/// assert_eq!(extract.extract_account(&parts("42")), Some(42));
/// assert_eq!(extract.extract_account(&parts("-1")), None);
/// assert_eq!(extract.extract_account(&parts("1e3")), None);
/// ```
///
/// # Panics
///
/// If `name` is not a valid header name. [`FromHeader::new`] takes a [`HeaderName`]
/// instead.
pub fn from_header(name: &str) -> FromHeader {
    match HeaderName::from_bytes(name.as_bytes()) {
        Ok(name) => FromHeader::new(name),
        Err(_) => panic!("{name:?} is not a valid header name"),
    }
}

/// The extractor made by [`from_header`].
#[derive(Clone, Debug)]
pub struct FromHeader {
    name: HeaderName,
}

impl FromHeader {
    /// An extractor reading the header `name`.
    pub fn new(name: HeaderName) -> Self {
        Self { name }
    }
}

impl ExtractAccount for FromHeader {
    fn extract_account(&self, request: &Parts) -> Option<u64> {
        let mut values = request.headers.get_all(&self.name).iter();
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        parse_account_id(value.as_bytes())
    }
}

/// The longest decimal `u64`: `18446744073709551615`.
const MAX_DIGITS: usize = 20;

/// 1 to 20 ASCII digits that fit in a `u64`; nothing else.
fn parse_account_id(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > MAX_DIGITS {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use http::{HeaderValue, Request};

    use super::*;

    fn with_headers(values: &[&[u8]]) -> Parts {
        let (mut parts, ()) = Request::new(()).into_parts();
        for v in values {
            parts
                .headers
                .append("x-account-id", HeaderValue::from_bytes(v).unwrap());
        }
        parts
    }

    #[test]
    fn header_values_are_plain_decimal_u64() {
        let extract = from_header("x-account-id");
        let get = |v: &[u8]| extract.extract_account(&with_headers(&[v]));
        assert_eq!(get(b"0"), Some(0));
        assert_eq!(get(b"42"), Some(42));
        assert_eq!(get(b"007"), Some(7));
        assert_eq!(get(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(get(b"18446744073709551616"), None);
        assert_eq!(get(b"99999999999999999999"), None);
        assert_eq!(get(b"000000000000000000001"), None, "21 characters");
        assert_eq!(get(&[b'1'; 1024]), None);
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b"1e3",
            b"0x10",
            b" 1",
            b"1 ",
            b"1.0",
            b"1,000",
            "\u{661}".as_bytes(), // ARABIC-INDIC DIGIT ONE
            "１".as_bytes(),      // FULLWIDTH DIGIT ONE
            b"\xff\xfe",
        ] {
            assert_eq!(get(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn header_missing_or_repeated_is_no_account() {
        let extract = from_header("X-Account-Id");
        assert_eq!(extract.extract_account(&with_headers(&[])), None);
        assert_eq!(extract.extract_account(&with_headers(&[b"1", b"2"])), None);
        assert_eq!(extract.extract_account(&with_headers(&[b"3"])), Some(3));
    }

    #[test]
    #[should_panic(expected = "not a valid header name")]
    fn bad_header_name_panics() {
        let _ = from_header("x account");
    }

    #[test]
    fn default_reads_account_id_extension() {
        let (mut parts, ()) = Request::new(()).into_parts();
        assert_eq!(FromAccountId.extract_account(&parts), None);
        parts.extensions.insert(AccountId(9));
        assert_eq!(FromAccountId.extract_account(&parts), Some(9));
    }

    #[test]
    fn extension_and_closure_extractors() {
        #[derive(Clone)]
        struct User(u64);
        let from_user = from_extension::<User>(|u| Some(u.0));
        let closure = |parts: &Parts| parts.uri.query().and_then(|q| q.parse().ok());

        let (mut parts, ()) = Request::get("/x?5").body(()).unwrap().into_parts();
        assert_eq!(from_user.extract_account(&parts), None);
        assert_eq!(closure.extract_account(&parts), Some(5));
        parts.extensions.insert(User(11));
        assert_eq!(from_user.extract_account(&parts), Some(11));
    }
}
