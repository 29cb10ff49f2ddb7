//! [`Text`]: a name known at compile time, or shared behind an `Arc`.

use std::{fmt, hash, sync::Arc};

/// A string that clones without allocating: a `&'static str`, which clones and drops
/// without touching any counter, or an `Arc<str>`. Compared, hashed and printed by content.
#[derive(Clone)]
pub(crate) enum Text {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Text {
    #[inline]
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::Static(text) => text,
            Self::Shared(text) => text,
        }
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl hash::Hash for Text {
    fn hash<H: hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn static_and_shared_text_are_equal_by_content() {
        let a = Text::Static("/a");
        let b = Text::Shared(Arc::from("/a"));
        assert_eq!(a, b);
        assert_ne!(a, Text::Static("/b"));
        assert_eq!(HashSet::from([a.clone(), b.clone()]).len(), 1);
        assert_eq!(format!("{a} {b:?}"), "/a \"/a\"");
    }
}
