//! Model-name globs for allowlists: `*` matches any run of characters, `?` one character.

/// A glob compiled once at config load; the common shapes avoid the general matcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Glob {
    Any,
    Exact(String),
    Prefix(String),
    Suffix(String),
    Pattern(Vec<char>),
}

impl Glob {
    pub fn new(pattern: &str) -> Glob {
        let wild = |c: char| c == '*' || c == '?';
        match pattern {
            "*" => Glob::Any,
            p if !p.contains(wild) => Glob::Exact(p.to_string()),
            p if p.ends_with('*') && !p[..p.len() - 1].contains(wild) => {
                Glob::Prefix(p[..p.len() - 1].to_string())
            }
            p if p.starts_with('*') && !p[1..].contains(wild) => Glob::Suffix(p[1..].to_string()),
            p => Glob::Pattern(p.chars().collect()),
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        match self {
            Glob::Any => true,
            Glob::Exact(s) => name == s,
            Glob::Prefix(s) => name.starts_with(s.as_str()),
            Glob::Suffix(s) => name.ends_with(s.as_str()),
            Glob::Pattern(p) => wildcard(p, &name.chars().collect::<Vec<_>>()),
        }
    }
}

/// Iterative wildcard match with single-star backtracking: linear in practice, no recursion.
fn wildcard(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn shapes_and_matches() {
        let cases = [
            ("*", "anything", true),
            ("gpt-4o", "gpt-4o", true),
            ("gpt-4o", "gpt-4o-mini", false),
            ("claude-*", "claude-sonnet-4", true),
            ("claude-*", "gpt", false),
            ("*-mini", "gpt-4o-mini", true),
            ("gpt-?o*", "gpt-4o-mini", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("*a*", "bab", true),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(
                Glob::new(pattern).matches(name),
                want,
                "{pattern} vs {name}"
            );
        }
        assert!(matches!(Glob::new("claude-*"), Glob::Prefix(_)));
        assert!(matches!(Glob::new("*-mini"), Glob::Suffix(_)));
    }
}
