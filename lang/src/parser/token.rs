//! Tokens produced by the lexer and consumed by the parser.
//!
//! A token is only a kind and a byte range into the source: the parser slices
//! the source text when it needs a name or a literal, so lexing allocates
//! nothing per token. Strings, indented strings and paths arrive as a sequence
//! of tokens (opening delimiter, text pieces, `${` ... `}` interpolations,
//! closing delimiter), which keeps the lexer free of recursion.

/// What a token is. Trivia (white space and comments) never becomes a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    Ident,
    Int,
    Float,
    // Keywords. `or` is one too, but the parser also accepts it as a name.
    If,
    Then,
    Else,
    Let,
    In,
    Rec,
    With,
    Assert,
    Inherit,
    OrKw,
    /// `"` opening a string.
    StrOpen,
    /// Raw text of a `"..."` string, escapes still in place.
    StrText,
    /// `"` closing a string.
    StrClose,
    /// `''` opening an indented string (with the rest of its first line when
    /// that is only spaces).
    IndOpen,
    /// Raw text of an indented string that counts for indentation.
    IndText,
    /// An escape (`''$`, `'''`, `''\n`, ...) or a lone `$` / `'` inside an
    /// indented string: literal text that does not count as indentation.
    IndEscape,
    /// `''` closing an indented string.
    IndClose,
    /// A literal piece of a path.
    PathText,
    /// Zero-width token after the last piece of a path.
    PathEnd,
    /// `${`, in a string, a path, an attribute name or a selection.
    Interp,
    /// A literal that parsed but is not supported (a URI, `<nixpath>`, `~/x`).
    /// The lexer has already reported it.
    Unsupported,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    LParen,
    RParen,
    Semi,
    Colon,
    Comma,
    At,
    Dot,
    Ellipsis,
    Question,
    Assign,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    AndAnd,
    OrOr,
    Arrow,
    Bang,
    Plus,
    Minus,
    Star,
    Slash,
    Update,
    Concat,
    Eof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub start: u32,
    pub end: u32,
}

impl TokenKind {
    /// The fixed spelling of punctuation and keywords, for messages.
    pub(crate) fn spelling(self) -> Option<&'static str> {
        use TokenKind::*;
        Some(match self {
            If => "if",
            Then => "then",
            Else => "else",
            Let => "let",
            In => "in",
            Rec => "rec",
            With => "with",
            Assert => "assert",
            Inherit => "inherit",
            OrKw => "or",
            LBrace => "{",
            RBrace => "}",
            LBracket => "[",
            RBracket => "]",
            LParen => "(",
            RParen => ")",
            Semi => ";",
            Colon => ":",
            Comma => ",",
            At => "@",
            Dot => ".",
            Ellipsis => "...",
            Question => "?",
            Assign => "=",
            EqEq => "==",
            NotEq => "!=",
            Lt => "<",
            Le => "<=",
            Gt => ">",
            Ge => ">=",
            AndAnd => "&&",
            OrOr => "||",
            Arrow => "->",
            Bang => "!",
            Plus => "+",
            Minus => "-",
            Star => "*",
            Slash => "/",
            Update => "//",
            Concat => "++",
            Interp => "${",
            IndOpen | IndClose => "''",
            StrOpen | StrClose => "\"",
            Ident | Int | Float | StrText | IndText | IndEscape | PathText | PathEnd
            | Unsupported | Eof => return None,
        })
    }
}

/// How a token is named in "found ..." messages.
pub(crate) fn describe(tok: Token, src: &str) -> String {
    use TokenKind::*;
    match tok.kind {
        Eof => "end of file".to_string(),
        StrOpen => "a string".to_string(),
        IndOpen => "an indented string".to_string(),
        PathText => "a path".to_string(),
        Unsupported => "an unsupported literal".to_string(),
        Ident | Int | Float => {
            let text = src.get(tok.start as usize..tok.end as usize).unwrap_or("");
            let mut shown: String = text.chars().take(24).collect();
            if shown.len() < text.len() {
                shown.push('…');
            }
            format!("`{shown}`")
        }
        kind => match kind.spelling() {
            Some(s) => format!("`{s}`"),
            None => "text".to_string(),
        },
    }
}
