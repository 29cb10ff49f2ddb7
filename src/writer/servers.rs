//! The list of ClickHouse servers a writer may send to: the one place it is parsed and
//! checked.

use crate::error::{Error, Result};

/// One or more ClickHouse HTTP URLs, in order of preference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Servers {
    urls: Vec<String>,
}

impl Servers {
    /// `urls` as given.
    pub(crate) fn new(urls: Vec<String>) -> Self {
        Self { urls }
    }

    /// One URL, or several separated by commas (`http://a:8123,http://b:8123`), as
    /// `CLICKHOUSE_URL` may list them; blanks around each are ignored.
    pub(crate) fn parse(text: &str) -> Self {
        Self::new(
            text.split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    /// The URLs, at least one once [`validate`](Self::validate) passed.
    pub(crate) fn urls(&self) -> &[String] {
        &self.urls
    }

    /// At least one URL, each `http://` or `https://`.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.urls.is_empty() {
            return Err(Error::Config(
                "at least one ClickHouse URL is needed".into(),
            ));
        }
        if let Some(bad) = self
            .urls
            .iter()
            .position(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            return Err(Error::Config(format!(
                "ClickHouse URL number {} must start with http:// or https://",
                bad + 1
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_one_or_several_urls() {
        assert_eq!(
            Servers::parse("http://a:1").urls(),
            ["http://a:1".to_owned()]
        );
        assert_eq!(
            Servers::parse(" http://a:1 , https://b:2,").urls(),
            ["http://a:1".to_owned(), "https://b:2".to_owned()]
        );
        assert!(Servers::parse("http://a:1,https://b:2").validate().is_ok());
        assert!(Servers::parse("").validate().is_err());
        let err = Servers::parse("http://a:1,b:2").validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid configuration: ClickHouse URL number 2 must start with http:// or https://"
        );
    }
}
