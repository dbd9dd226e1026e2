//! SQL `LIKE` and `ILIKE`: `%` matches any run of characters, `_` exactly one character (not
//! one byte), and a backslash makes the next character literal.
//!
//! `ILIKE` folds case the way PostgreSQL does in a database whose `LC_CTYPE` is `C` (what the
//! tests' clusters use, `initdb --locale=C`): only ASCII letters are folded, so `'Ä' ILIKE 'ä'`
//! is false there as it is here. A database with a Unicode-aware locale would fold more; the
//! replica does not know the source's collation, and C is the one both sides can agree on
//! exactly (it is also why text orders by bytes).
//!
//! Matching walks the pattern without allocating: on a mismatch it backtracks to the last
//! `%` and lets it swallow one more character, which is linear for patterns with one `%` and
//! stays polynomial for the rest.

/// Why a pattern cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("a LIKE pattern must not end with the escape character `\\`")]
    TrailingEscape,
}

/// Checks a pattern the way PostgreSQL does before matching with it.
pub fn check_pattern(pattern: &str) -> Result<(), PatternError> {
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.next().is_none() {
            return Err(PatternError::TrailingEscape);
        }
    }
    Ok(())
}

enum Token {
    /// `%`
    Many,
    /// `_`
    One,
    Literal(char),
}

/// The token starting at byte `at` of `pattern`, and the byte where the next one starts.
fn token_at(pattern: &str, at: usize) -> Option<(Token, usize)> {
    let mut chars = pattern[at..].chars();
    let c = chars.next()?;
    let after = at + c.len_utf8();
    Some(match c {
        '%' => (Token::Many, after),
        '_' => (Token::One, after),
        // A trailing escape is refused by `check_pattern`; should one get here, it is literal.
        '\\' => match chars.next() {
            Some(escaped) => (Token::Literal(escaped), after + escaped.len_utf8()),
            None => (Token::Literal('\\'), after),
        },
        c => (Token::Literal(c), after),
    })
}

/// Whether `text` matches `pattern` (SQL `LIKE`, or `ILIKE` when `case_insensitive`).
pub fn like_matches(text: &str, pattern: &str, case_insensitive: bool) -> bool {
    let same = |a: char, b: char| if case_insensitive { a.eq_ignore_ascii_case(&b) } else { a == b };
    let next_char = |s: usize| text[s..].chars().next();
    let (mut p, mut s) = (0usize, 0usize);
    // Where to resume after the last `%`: the pattern right after it, and how much text it has
    // swallowed so far.
    let mut resume: Option<(usize, usize)> = None;
    loop {
        let step = match token_at(pattern, p) {
            Some((Token::Many, after)) => {
                resume = Some((after, s));
                p = after;
                continue;
            }
            Some((Token::One, after)) => next_char(s).map(|c| (after, s + c.len_utf8())),
            Some((Token::Literal(want), after)) => {
                next_char(s).filter(|&c| same(c, want)).map(|c| (after, s + c.len_utf8()))
            }
            None if s == text.len() => return true,
            None => None,
        };
        match step {
            Some((np, ns)) => (p, s) = (np, ns),
            None => match resume {
                Some((rp, rs)) => match next_char(rs) {
                    Some(c) => {
                        let swallowed = rs + c.len_utf8();
                        resume = Some((rp, swallowed));
                        (p, s) = (rp, swallowed);
                    }
                    None => return false,
                },
                None => return false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn like(t: &str, p: &str) -> bool {
        like_matches(t, p, false)
    }

    #[test]
    fn percent_and_underscore() {
        assert!(like("", ""));
        assert!(like("", "%"));
        assert!(like("", "%%"));
        assert!(!like("", "_"));
        assert!(like("abc", "abc"));
        assert!(!like("abc", "ab"));
        assert!(!like("ab", "abc"));
        assert!(like("abc", "a%"));
        assert!(like("abc", "%c"));
        assert!(like("abc", "%b%"));
        assert!(like("abc", "_b_"));
        assert!(!like("abc", "_c%"));
        assert!(like("aaab", "%a_b"));
        assert!(like("mississippi", "%iss%ppi"));
        assert!(!like("mississippi", "%iss%ppx"));
        assert!(like("abcabd", "%abd"));
        assert!(like("xaaa", "x%a%a"));
    }

    #[test]
    fn underscore_is_one_character_not_one_byte() {
        assert!(like("é", "_"));
        assert!(like("日本語", "_本_"));
        assert!(!like("日本語", "__"));
        assert!(like("🙂x", "%x"));
    }

    #[test]
    fn backslash_escapes() {
        assert!(like("50%", "50\\%"));
        assert!(!like("500", "50\\%"));
        assert!(like("a_b", "a\\_b"));
        assert!(!like("axb", "a\\_b"));
        assert!(like("a\\b", "a\\\\b"));
        assert!(like("ab", "\\a\\b"));
        assert_eq!(check_pattern("abc\\"), Err(PatternError::TrailingEscape));
        assert_eq!(check_pattern("abc\\\\"), Ok(()));
    }

    #[test]
    fn ilike_folds_ascii_only() {
        assert!(like_matches("Hello", "hEL%", true));
        assert!(!like_matches("Hello", "hEL%", false));
        assert!(!like_matches("Ärger", "ä%", true));
        assert!(like_matches("Ärger", "Ä%", true));
    }
}
