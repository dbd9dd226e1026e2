//! Statements in the binlog that are not row changes but change what a watched table holds or
//! how its rows look: TRUNCATE (a Query event, not row events) and DDL. Only the statement's
//! head is read — enough to name the tables it touches; the table is then copied again, so
//! what the statement did in detail never matters.

/// What a statement does to the tables it names.
#[derive(Debug, PartialEq, Eq)]
pub enum Statement {
    /// Empties the tables.
    Truncate(Vec<(String, String)>),
    /// Changes (or drops, renames, recreates) the tables: copy them again.
    Ddl(Vec<(String, String)>),
    /// Anything else (BEGIN, COMMIT, SAVEPOINT, DDL on other objects…).
    Other,
}

/// Reads a Query event's text; `schema` is the event's default database.
pub fn classify(query: &str, schema: &str) -> Statement {
    let tokens = tokens(query);
    let upper: Vec<String> = tokens.iter().take(6).map(|t| t.to_ascii_uppercase()).collect();
    let word = |i: usize| upper.get(i).map(String::as_str).unwrap_or("");
    let names_from = |start: usize| -> Vec<(String, String)> {
        tokens[start.min(tokens.len())..]
            .iter()
            .take_while(|t| !matches!(t.to_ascii_uppercase().as_str(), "ADD" | "DROP" | "MODIFY" | "CHANGE" | "("))
            .filter(|t| !matches!(t.to_ascii_uppercase().as_str(), "," | "TO" | "IF" | "EXISTS" | "NOT"))
            .map(|t| qualified(t, schema))
            .collect()
    };
    match word(0) {
        "TRUNCATE" => {
            Statement::Truncate(names_from(if word(1) == "TABLE" { 2 } else { 1 }).into_iter().take(1).collect())
        }
        "ALTER" | "CREATE" | "DROP" | "RENAME" | "OPTIMIZE" | "REPAIR" => {
            // The position of TABLE, after words like ONLINE, IGNORE, OR REPLACE, TEMPORARY.
            let Some(at) = upper.iter().position(|w| w == "TABLE") else {
                // CREATE INDEX … ON t, DROP INDEX … ON t
                if upper.iter().any(|w| w == "INDEX")
                    && let Some(on) = tokens.iter().position(|t| t.eq_ignore_ascii_case("ON"))
                    && let Some(name) = tokens.get(on + 1)
                {
                    return Statement::Ddl(vec![qualified(name, schema)]);
                }
                return Statement::Other;
            };
            if upper.iter().take(at).any(|w| w == "TEMPORARY") {
                return Statement::Other;
            }
            let names = names_from(at + 1);
            let names = match word(0) {
                // ALTER TABLE t …: only t (the rest is the alteration).
                "ALTER" | "CREATE" => names.into_iter().take(1).collect(),
                _ => names,
            };
            Statement::Ddl(names)
        }
        _ => Statement::Other,
    }
}

/// `db`.`t`, db.t or t, as (database, table).
fn qualified(token: &str, schema: &str) -> (String, String) {
    match split_dot(token) {
        Some((db, t)) => (unquote(db), unquote(t)),
        None => (schema.to_string(), unquote(token)),
    }
}

fn split_dot(token: &str) -> Option<(&str, &str)> {
    let mut in_quote = false;
    for (i, c) in token.char_indices() {
        match c {
            '`' => in_quote = !in_quote,
            '.' if !in_quote => return Some((&token[..i], &token[i + 1..])),
            _ => {}
        }
    }
    None
}

fn unquote(s: &str) -> String {
    s.strip_prefix('`').and_then(|s| s.strip_suffix('`')).map(|s| s.replace("``", "`")).unwrap_or_else(|| s.to_string())
}

/// Words, backquoted names (with their dots) and punctuation, comments skipped.
fn tokens(query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b: Vec<char> = query.chars().collect();
    let mut i = 0;
    let mut current = String::new();
    let flush = |current: &mut String, out: &mut Vec<String>| {
        if !current.is_empty() {
            out.push(std::mem::take(current));
        }
    };
    while i < b.len() && out.len() < 64 {
        let c = b[i];
        if c == '/' && b.get(i + 1) == Some(&'*') {
            flush(&mut current, &mut out);
            i += 2;
            while i + 1 < b.len() && !(b[i] == '*' && b[i + 1] == '/') {
                i += 1;
            }
            i += 2;
            continue;
        }
        if c == '`' {
            current.push(c);
            i += 1;
            while i < b.len() {
                current.push(b[i]);
                if b[i] == '`' {
                    if b.get(i + 1) == Some(&'`') {
                        current.push('`');
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            continue;
        }
        if c.is_whitespace() {
            flush(&mut current, &mut out);
        } else if c == ',' || c == '(' || c == ';' {
            flush(&mut current, &mut out);
            out.push(c.to_string());
        } else {
            current.push(c);
        }
        i += 1;
    }
    flush(&mut current, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(db: &str, table: &str) -> (String, String) {
        (db.into(), table.into())
    }

    #[test]
    fn truncate_in_every_spelling_names_its_table() {
        assert_eq!(classify("TRUNCATE tickets", "help"), Statement::Truncate(vec![t("help", "tickets")]));
        assert_eq!(classify("truncate table `crm`.`agents`", "help"), Statement::Truncate(vec![t("crm", "agents")]));
        assert_eq!(classify("TRUNCATE TABLE help.tickets;", "x"), Statement::Truncate(vec![t("help", "tickets")]));
    }

    #[test]
    fn ddl_names_the_tables_it_changes() {
        assert_eq!(
            classify("ALTER TABLE tickets ADD COLUMN sla int DEFAULT 4", "help"),
            Statement::Ddl(vec![t("help", "tickets")])
        );
        assert_eq!(classify("alter online ignore table `a.b` drop x", "d"), Statement::Ddl(vec![t("d", "a.b")]));
        assert_eq!(
            classify("RENAME TABLE tickets TO old_tickets, new_tickets TO tickets", "h"),
            Statement::Ddl(vec![t("h", "tickets"), t("h", "old_tickets"), t("h", "new_tickets"), t("h", "tickets")])
        );
        assert_eq!(
            classify("DROP TABLE IF EXISTS `tickets`,`x` /* generated by server */", "h"),
            Statement::Ddl(vec![t("h", "tickets"), t("h", "x")])
        );
        assert_eq!(classify("CREATE TABLE tickets (id int primary key)", "h"), Statement::Ddl(vec![t("h", "tickets")]));
        assert_eq!(classify("CREATE INDEX i ON tickets (a)", "h"), Statement::Ddl(vec![t("h", "tickets")]));
        assert_eq!(classify("CREATE TEMPORARY TABLE tickets (a int)", "h"), Statement::Other);
        assert_eq!(classify("BEGIN", "h"), Statement::Other);
        assert_eq!(classify("SAVEPOINT `s1`", "h"), Statement::Other);
        assert_eq!(classify("/* c */ TRUNCATE t", "h"), Statement::Truncate(vec![t("h", "t")]));
    }
}
