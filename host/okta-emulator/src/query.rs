//! The expression language of `search` and `filter` (Okta's SCIM-like filter syntax,
//! developer.okta.com/docs/api/#filter): `attribute op "value"` joined by `and`/`or`, with
//! parentheses; operators `eq gt ge lt le sw pr` (and `co` where an endpoint allows it). `ne`
//! is not supported by the Users API's `search` ("`ne` is not supported"), so it is refused.
//! Strings compare case-insensitively (the Users API's `search`: "operators … and string values
//! are case insensitive"; diacritical marks stay significant), or exactly for `filter`; a literal that is an RFC 3339 time compares as a time
//! against an attribute that is one.
//!
//! And the opaque `after` cursors of Link-header paging: base64url of the last key served, with
//! a checksum so that a cursor a client made up or edited is refused instead of silently
//! restarting the walk.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::clock::parse_time;

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
    Sw,
    Co,
    Pr,
}

/// A parsed expression.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp {
        attr: String,
        op: Op,
        value: Option<Lit>,
    },
}

/// A literal.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Lit {
    Str(String),
    Bool(bool),
    Num(f64),
}

impl Expr {
    /// Every (attribute, operator) the expression uses.
    pub(crate) fn comparisons(&self) -> Vec<(&str, Op)> {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                let mut all = a.comparisons();
                all.extend(b.comparisons());
                all
            }
            Expr::Cmp { attr, op, .. } => vec![(attr.as_str(), *op)],
        }
    }

    /// Whether an object matches; `lookup` gives the attribute's values (several for arrays,
    /// none when absent or null).
    pub(crate) fn matches(&self, lookup: &dyn Fn(&str) -> Vec<Value>) -> bool {
        self.matches_case(lookup, false)
    }

    /// Like [`Expr::matches`]; `case_sensitive` compares string values exactly (the Users
    /// API's `filter`: "Filtering is case-sensitive for property names and query values").
    pub(crate) fn matches_case(
        &self,
        lookup: &dyn Fn(&str) -> Vec<Value>,
        case_sensitive: bool,
    ) -> bool {
        match self {
            Expr::And(a, b) => {
                a.matches_case(lookup, case_sensitive) && b.matches_case(lookup, case_sensitive)
            }
            Expr::Or(a, b) => {
                a.matches_case(lookup, case_sensitive) || b.matches_case(lookup, case_sensitive)
            }
            Expr::Cmp { attr, op, value } => {
                let values = lookup(attr);
                match (op, value) {
                    (Op::Pr, _) => !values.is_empty(),
                    (_, Some(lit)) => values.iter().any(|v| compare(v, *op, lit, case_sensitive)),
                    (_, None) => false,
                }
            }
        }
    }
}

fn compare(value: &Value, op: Op, lit: &Lit, case_sensitive: bool) -> bool {
    use std::cmp::Ordering;
    let fold = |s: &str| {
        if case_sensitive {
            s.to_owned()
        } else {
            s.to_lowercase()
        }
    };
    let ordering: Option<Ordering> = match (value, lit) {
        (Value::Bool(a), Lit::Bool(b)) => Some(a.cmp(b)),
        (Value::Number(a), Lit::Num(b)) => a.as_f64().and_then(|a| a.partial_cmp(b)),
        (Value::String(a), Lit::Str(b)) => {
            if op == Op::Sw {
                return fold(a).starts_with(&fold(b));
            }
            if op == Op::Co {
                return fold(a).contains(&fold(b));
            }
            match (parse_time(a), parse_time(b)) {
                (Some(a), Some(b)) => Some(a.cmp(&b)),
                _ => Some(fold(a).cmp(&fold(b))),
            }
        }
        _ => None,
    };
    let Some(ordering) = ordering else {
        return false;
    };
    match op {
        Op::Eq => ordering == Ordering::Equal,
        Op::Gt => ordering == Ordering::Greater,
        Op::Ge => ordering != Ordering::Less,
        Op::Lt => ordering == Ordering::Less,
        Op::Le => ordering != Ordering::Greater,
        Op::Sw | Op::Co | Op::Pr => false,
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Open,
    Close,
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('\\') => match chars.next() {
                            Some(e) => s.push(e),
                            None => return Err("an unterminated string".into()),
                        },
                        Some('"') => break,
                        Some(c) => s.push(c),
                        None => return Err("an unterminated string".into()),
                    }
                }
                tokens.push(Token::Str(s));
            }
            _ => {
                let mut w = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '(' || c == ')' || c == '"' {
                        break;
                    }
                    w.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(w));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek_word(&self) -> Option<String> {
        match self.tokens.get(self.pos) {
            Some(Token::Word(w)) => Some(w.to_ascii_lowercase()),
            _ => None,
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek_word().as_deref() == Some("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.primary()?;
        while self.peek_word().as_deref() == Some("and") {
            self.pos += 1;
            let right = self.primary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.tokens.get(self.pos).cloned() {
            Some(Token::Open) => {
                self.pos += 1;
                let inner = self.or()?;
                if self.tokens.get(self.pos) != Some(&Token::Close) {
                    return Err("a missing ')'".into());
                }
                self.pos += 1;
                Ok(inner)
            }
            Some(Token::Word(attr)) => {
                self.pos += 1;
                let op = match self.peek_word().as_deref() {
                    Some("eq") => Op::Eq,
                    Some("gt") => Op::Gt,
                    Some("ge") => Op::Ge,
                    Some("lt") => Op::Lt,
                    Some("le") => Op::Le,
                    Some("sw") => Op::Sw,
                    Some("co") => Op::Co,
                    Some("pr") => Op::Pr,
                    Some("ne") => return Err("the operator 'ne' (not supported)".into()),
                    Some(other) => return Err(format!("the unknown operator '{other}'")),
                    None => return Err(format!("no operator after '{attr}'")),
                };
                self.pos += 1;
                if op == Op::Pr {
                    return Ok(Expr::Cmp {
                        attr,
                        op,
                        value: None,
                    });
                }
                let value = match self.tokens.get(self.pos).cloned() {
                    Some(Token::Str(s)) => Lit::Str(s),
                    Some(Token::Word(w)) if w == "true" || w == "false" => Lit::Bool(w == "true"),
                    Some(Token::Word(w)) => match w.parse::<f64>() {
                        Ok(n) => Lit::Num(n),
                        Err(_) => return Err(format!("the unquoted value '{w}'")),
                    },
                    _ => return Err(format!("no value after '{attr}'")),
                };
                self.pos += 1;
                Ok(Expr::Cmp {
                    attr,
                    op,
                    value: Some(value),
                })
            }
            Some(Token::Str(s)) => Err(format!("a value \"{s}\" where an attribute belongs")),
            Some(Token::Close) => Err("an unexpected ')'".into()),
            None => Err("an expression that ends too early".into()),
        }
    }
}

/// Parses an expression; the error names what is wrong.
pub(crate) fn parse(text: &str) -> Result<Expr, String> {
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return Err("an empty expression".into());
    }
    let mut parser = Parser { tokens, pos: 0 };
    let expr = parser.or()?;
    if parser.pos != parser.tokens.len() {
        return Err("extra text after the expression".into());
    }
    Ok(expr)
}

/// Looks a dotted path up in a JSON object; arrays on the way fan out (`target.id`).
pub(crate) fn lookup_path(root: &Value, path: &str) -> Vec<Value> {
    let mut current = vec![root.clone()];
    for part in path.split('.') {
        let mut next = Vec::new();
        for value in current {
            match value {
                Value::Array(items) => {
                    for item in items {
                        if let Some(v) = item.get(part) {
                            next.push(v.clone());
                        }
                    }
                }
                other => {
                    if let Some(v) = other.get(part) {
                        next.push(v.clone());
                    }
                }
            }
        }
        current = next;
    }
    current
        .into_iter()
        .flat_map(|v| match v {
            Value::Array(items) => items,
            Value::Null => Vec::new(),
            other => vec![other],
        })
        .collect()
}

/// Makes an opaque cursor for the last key served.
pub(crate) fn encode_cursor(secret: &str, key: &str) -> String {
    let payload = URL_SAFE_NO_PAD.encode(key.as_bytes());
    format!("{payload}{}", &checksum(secret, &payload))
}

/// The key inside a cursor this emulator made; `None` for anything else.
pub(crate) fn decode_cursor(secret: &str, cursor: &str) -> Option<String> {
    if cursor.len() < 12 || !cursor.is_char_boundary(cursor.len() - 12) {
        return None;
    }
    let (payload, check) = cursor.split_at(cursor.len() - 12);
    if checksum(secret, payload) != check {
        return None;
    }
    String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

fn checksum(secret: &str, payload: &str) -> String {
    let digest = Sha256::digest(format!("{secret}|{payload}").as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_matches() {
        let user = json!({"status": "ACTIVE", "lastUpdated": "2026-01-02T00:00:00.000Z",
                          "profile": {"login": "Zoë@example.com", "title": null}});
        let m = |text: &str| parse(text).expect(text).matches(&|p| lookup_path(&user, p));
        assert!(m(r#"status eq "ACTIVE""#));
        assert!(m(r#"status eq "active""#));
        assert!(m(r#"lastUpdated gt "2026-01-01T23:59:59.000Z""#));
        assert!(!m(r#"lastUpdated gt "2026-01-02T01:00:00+00:00""#));
        assert!(m(
            r#"profile.login sw "zoë" and (status eq "X" or status pr)"#
        ));
        assert!(!m("profile.title pr"));
        let exact = parse(r#"status eq "active""#).unwrap();
        assert!(!exact.matches_case(&|p| lookup_path(&user, p), true));
        assert!(
            !m(r#"profile.login eq "zoe@example.com""#),
            "diacritics are significant"
        );
        assert!(parse(r#"status ne "ACTIVE""#).unwrap_err().contains("ne"));
        assert!(parse("status eq").is_err());
        assert!(parse(r#"(status eq "A""#).is_err());
    }

    #[test]
    fn cursors_are_opaque_and_checked() {
        let c = encode_cursor("s", "00uABC");
        assert_eq!(decode_cursor("s", &c).as_deref(), Some("00uABC"));
        assert_eq!(decode_cursor("other", &c), None);
        assert_eq!(decode_cursor("s", "00uABC"), None);
        let mut edited = c.clone();
        edited.replace_range(0..1, "A");
        assert_eq!(decode_cursor("s", &edited), None);
    }
}
