//! sops's dotenv store: `KEY=value` lines (newlines in values written `\n`), `#` comments, and
//! the metadata flattened into `sops_…` keys (`sops_age__list_0__map_recipient=…`).

use super::tree::Tree;

/// One line of a dotenv file.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// `#text`
    Comment(String),
    /// `KEY=value`, the value with `\n` read as a newline.
    Pair(String, String),
}

/// Why a dotenv file cannot be read; names the line, never its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {0} is neither KEY=value nor a # comment")]
pub struct DotenvError(pub usize);

/// Reads a dotenv file as sops does.
///
/// # Errors
/// [`DotenvError`] with the 1-based number of the first line that is not `KEY=value`.
pub fn parse(text: &str) -> Result<Vec<Line>, DotenvError> {
    let mut lines = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            lines.push(Line::Comment(comment.to_owned()));
        } else {
            let (key, value) = line.split_once('=').ok_or(DotenvError(i + 1))?;
            lines.push(Line::Pair(key.to_owned(), value.replace("\\n", "\n")));
        }
    }
    Ok(lines)
}

/// Writes lines back as sops's `EmitPlainFile`.
pub fn emit(lines: &[Line]) -> String {
    let mut out = String::new();
    for line in lines {
        match line {
            Line::Comment(c) => {
                out.push('#');
                out.push_str(c);
            }
            Line::Pair(k, v) => {
                out.push_str(k);
                out.push('=');
                out.push_str(&v.replace('\n', "\\n"));
            }
        }
        out.push('\n');
    }
    out
}

/// Takes the `sops_…` entries out of `lines` and rebuilds the metadata mapping from their
/// flattened keys; `None` when there are none.
pub fn take_metadata(lines: &mut Vec<Line>) -> Option<Tree> {
    let mut flat = Vec::new();
    lines.retain(|line| match line {
        Line::Pair(k, v) => match k.strip_prefix("sops_") {
            Some(rest) => {
                flat.push((rest.to_owned(), v.clone()));
                false
            }
            None => true,
        },
        Line::Comment(_) => true,
    });
    if flat.is_empty() {
        return None;
    }
    let mut root = Tree::Map(Vec::new());
    for (key, value) in flat {
        insert(&mut root, &tokens(&key), Tree::Str(value));
    }
    Some(root)
}

#[derive(Debug, PartialEq)]
enum Token {
    Key(String),
    Index(usize),
}

/// `age__list_0__map_recipient` → [age, 0, recipient].
fn tokens(path: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut rest = path;
    let mut current = Token::Key(String::new());
    loop {
        let next_map = rest.find("__map_");
        let next_list = rest.find("__list_");
        let (at, is_list) = match (next_map, next_list) {
            (Some(m), Some(l)) if l < m => (l, true),
            (Some(m), _) => (m, false),
            (None, Some(l)) => (l, true),
            (None, None) => {
                out.push(finish(current, rest));
                return out;
            }
        };
        out.push(finish(current, &rest[..at]));
        if is_list {
            current = Token::Index(0);
            rest = &rest[at + "__list_".len()..];
        } else {
            current = Token::Key(String::new());
            rest = &rest[at + "__map_".len()..];
        }
    }
}

fn finish(kind: Token, text: &str) -> Token {
    match kind {
        Token::Key(_) => Token::Key(text.to_owned()),
        Token::Index(_) => Token::Index(text.parse().unwrap_or(0)),
    }
}

fn insert(node: &mut Tree, path: &[Token], value: Tree) {
    let Some((first, rest)) = path.split_first() else {
        *node = value;
        return;
    };
    let child = match first {
        Token::Key(k) => {
            if !matches!(node, Tree::Map(_)) {
                *node = Tree::Map(Vec::new());
            }
            let Tree::Map(items) = node else { return };
            let at = match items.iter().position(|(key, _)| key == k) {
                Some(at) => at,
                None => {
                    items.push((k.clone(), Tree::Null));
                    items.len() - 1
                }
            };
            &mut items[at].1
        }
        Token::Index(i) => {
            if !matches!(node, Tree::List(_)) {
                *node = Tree::List(Vec::new());
            }
            let Tree::List(items) = node else { return };
            if items.len() <= *i {
                items.resize(*i + 1, Tree::Null);
            }
            &mut items[*i]
        }
    };
    insert(child, rest, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_emits_as_sops() {
        let text = "#a comment\nA=1\n\nB=two\\nlines\nC=x=y\n";
        let lines = parse(text).unwrap();
        assert_eq!(lines[2], Line::Pair("B".into(), "two\nlines".into()));
        assert_eq!(lines[3], Line::Pair("C".into(), "x=y".into()));
        assert_eq!(emit(&lines), "#a comment\nA=1\nB=two\\nlines\nC=x=y\n");
        assert_eq!(parse("A=1\nsecret-without-equals\n"), Err(DotenvError(2)));
    }

    #[test]
    fn unflattens_the_metadata() {
        let mut lines = parse(
            "A=1\nsops_age__list_0__map_recipient=age1x\nsops_age__list_0__map_enc=E\n\
             sops_age__list_1__map_recipient=age1y\nsops_mac=M\n",
        )
        .unwrap();
        let md = take_metadata(&mut lines).unwrap();
        assert_eq!(lines, [Line::Pair("A".into(), "1".into())]);
        let Some(Tree::List(age)) = md.get("age") else {
            panic!("no age list: {md:?}")
        };
        assert_eq!(age.len(), 2);
        assert_eq!(age[0].get("enc"), Some(&Tree::Str("E".into())));
        assert_eq!(age[1].get("recipient"), Some(&Tree::Str("age1y".into())));
        assert_eq!(md.get("mac"), Some(&Tree::Str("M".into())));
    }
}
