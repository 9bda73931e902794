//! Model name patterns (`*` stands for any run of characters, `?` for any one character), as the `models` lists of
//! `[[upstreams]]` and `[[context.models]]` give them; matching is the `wildmatch` crate's.

use serde::Deserialize;
use wildmatch::WildMatch;

/// One model name pattern, compiled once when the configuration is read.
#[derive(Clone, Debug, Deserialize)]
#[serde(from = "String")]
pub struct ModelPattern {
    text: String,
    matcher: WildMatch,
}

impl ModelPattern {
    /// Whether `model` matches.
    pub fn matches(&self, model: &str) -> bool {
        self.matcher.matches(model)
    }

    /// The pattern itself when it has no wildcard: a model name it serves exactly.
    pub fn literal(&self) -> Option<&str> {
        (!self.text.contains(['*', '?'])).then_some(self.text.as_str())
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl From<String> for ModelPattern {
    fn from(text: String) -> Self {
        let matcher = WildMatch::new(&text);
        Self { text, matcher }
    }
}

impl From<&str> for ModelPattern {
    fn from(text: &str) -> Self {
        Self::from(text.to_string())
    }
}

impl PartialEq for ModelPattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl PartialEq<&str> for ModelPattern {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

#[cfg(test)]
mod tests {
    use super::ModelPattern;

    fn matches(pattern: &str, model: &str) -> bool {
        ModelPattern::from(pattern).matches(model)
    }

    #[test]
    fn wildcards() {
        assert!(matches("*", "anything"));
        assert!(matches("llama3*", "llama3.1:8b"));
        assert!(!matches("llama3*", "qwen"));
        assert!(matches("gpt-4o", "gpt-4o"));
        assert!(!matches("gpt-4o", "gpt-4o-mini"));
        assert!(matches("*-instruct", "qwen-instruct"));
        assert!(matches("a*b*c", "a-b-c"));
        assert!(!matches("a*bc", "abc-"));
        assert!(!matches("ab*ba", "aba"));
        assert!(matches("qwen2.5-?b", "qwen2.5-7b"));
        assert!(matches("meta-llama/*", "meta-llama/Llama-3.1-8B"));
    }

    #[test]
    fn literals() {
        assert_eq!(ModelPattern::from("gpt-4o").literal(), Some("gpt-4o"));
        assert_eq!(ModelPattern::from("gpt-*").literal(), None);
        assert_eq!(ModelPattern::from("gpt-4?").literal(), None);
    }
}
