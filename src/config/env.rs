//! `${NAME}` interpolation of environment variables, applied to the raw file text before TOML
//! parsing, so a secret can sit in any string field. `$${` writes a literal `${`.

/// Replaces every `${NAME}` in `text` using `lookup`. Returns the names that had no value.
pub fn interpolate(text: &str, lookup: impl Fn(&str) -> Option<String>) -> (String, Vec<String>) {
    let mut out = String::with_capacity(text.len());
    let mut missing = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('$') {
            out.push_str(&rest[..at - 1]);
            out.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                match lookup(name) {
                    Some(value) => out.push_str(&toml_escape(&value)),
                    None => missing.push(name.to_string()),
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[at..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    (out, missing)
}

/// Values land inside TOML strings: escape what would end or corrupt them.
fn toml_escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::interpolate;

    #[test]
    fn replaces_known_and_reports_missing() {
        let env = |name: &str| (name == "A").then(|| "x\"y".to_string());
        let (out, missing) = interpolate(r#"a = "${A}" b = "${B}" c = "$${A}""#, env);
        assert_eq!(out, r#"a = "x\"y" b = "" c = "${A}""#);
        assert_eq!(missing, vec!["B".to_string()]);
    }
}
