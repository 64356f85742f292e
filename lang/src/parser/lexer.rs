//! The lexer: source text to a flat vector of [`Token`]s.
//!
//! The language is not context free at the lexical level: inside `"..."`,
//! `''...''` and paths the rules differ, and an interpolation `${ ... }`
//! switches back to ordinary tokens until its matching `}`. The lexer keeps an
//! explicit stack of [`Mode`]s (no recursion): `{` and `${` push
//! [`Mode::Normal`], `}` pops, and when the pop reveals a string or path mode,
//! lexing continues inside that literal. This mirrors Nix's flex lexer,
//! including its longest-match rules between identifiers, numbers, paths and
//! URIs.
//!
//! The lexer never fails: a character that starts no token is reported and
//! skipped; an unsupported literal (URI, `<path>`, `~/path`) is reported and
//! becomes one [`TokenKind::Unsupported`] token; an unterminated string or
//! comment is reported once, with its opening delimiter, at the end of the
//! file.

use super::error::{ParseError, Unsupported};
use super::token::{Token, TokenKind};
use crate::source::{FileId, Span};

/// Output of [`lex`].
pub(crate) struct Lexed {
    pub tokens: Vec<Token>,
    pub errors: Vec<ParseError>,
    /// A string or comment ran to the end of the file: the parser should not
    /// add its own "found end of file" errors on top.
    pub eof_swallowed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Ordinary tokens; pushed by `{` and `${`, popped by `}`.
    Normal,
    /// Inside `"..."`; `open` is the offset of the `"`.
    Str { open: u32 },
    /// Inside `''...''`.
    Ind { open: u32 },
    /// Inside a path that may continue after an interpolation; `start` is the
    /// offset of its first character.
    Path { start: u32 },
}

// Character classes, as bit flags in a table indexed by byte.
const PATH: u8 = 1; // [a-zA-Z0-9._+-]
const IDENT_START: u8 = 2; // [a-zA-Z_]
const IDENT: u8 = 4; // [a-zA-Z0-9_'-]
const SCHEME: u8 = 8; // [a-zA-Z0-9+.-]
const URI: u8 = 16; // [a-zA-Z0-9%/?:@&=+$,_.!~*'-]
const DIGIT: u8 = 32;

const fn class_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let alpha = b.is_ascii_alphabetic();
        let digit = b.is_ascii_digit();
        let mut f = 0;
        if alpha || digit || matches!(b, b'.' | b'_' | b'+' | b'-') {
            f |= PATH;
        }
        if alpha || b == b'_' {
            f |= IDENT_START;
        }
        if alpha || digit || matches!(b, b'_' | b'\'' | b'-') {
            f |= IDENT;
        }
        if alpha || digit || matches!(b, b'+' | b'.' | b'-') {
            f |= SCHEME;
        }
        if alpha
            || digit
            || matches!(
                b,
                b'%' | b'/'
                    | b'?'
                    | b':'
                    | b'@'
                    | b'&'
                    | b'='
                    | b'+'
                    | b'$'
                    | b','
                    | b'-'
                    | b'_'
                    | b'.'
                    | b'!'
                    | b'~'
                    | b'*'
                    | b'\''
            )
        {
            f |= URI;
        }
        if digit {
            f |= DIGIT;
        }
        t[c] = f;
        c += 1;
    }
    t
}

static CLASS: [u8; 256] = class_table();

/// Lexes `src` (at most `u32::MAX` bytes; the caller checks).
pub(crate) fn lex(file: FileId, src: &str) -> Lexed {
    let mut lx = Lexer {
        src,
        b: src.as_bytes(),
        pos: 0,
        file,
        // Dense code has a token every two or three bytes; reserving for one every
        // two means the vector rarely grows (and reserved memory that is not
        // used is never touched).
        tokens: Vec::with_capacity(src.len() / 2 + 16),
        errors: Vec::new(),
        modes: vec![Mode::Normal],
        eof_swallowed: false,
        no_path_until: 0,
        no_uri_until: 0,
    };
    lx.run();
    Lexed {
        tokens: lx.tokens,
        errors: lx.errors,
        eof_swallowed: lx.eof_swallowed,
    }
}

struct Lexer<'s> {
    src: &'s str,
    b: &'s [u8],
    pos: usize,
    file: FileId,
    tokens: Vec<Token>,
    errors: Vec<ParseError>,
    modes: Vec<Mode>,
    eof_swallowed: bool,
    /// No path starts before this offset (see [`Lexer::path_len`]); keeps
    /// lexing `a.b.c.d...` linear.
    no_path_until: usize,
    /// No URI starts before this offset.
    no_uri_until: usize,
}

impl Lexer<'_> {
    fn at(&self, i: usize) -> u8 {
        self.b.get(i).copied().unwrap_or(0)
    }

    fn is(&self, i: usize, class: u8) -> bool {
        i < self.b.len() && CLASS[self.b[i] as usize] & class != 0
    }

    fn span(&self, start: usize, end: usize) -> Span {
        Span::new(self.file, start as u32, end as u32)
    }

    fn push(&mut self, kind: TokenKind, start: usize, end: usize) {
        self.tokens.push(Token {
            kind,
            start: start as u32,
            end: end as u32,
        });
        self.pos = end;
    }

    fn run(&mut self) {
        loop {
            let more = match self.modes.last().copied().unwrap_or(Mode::Normal) {
                Mode::Normal => self.normal(),
                Mode::Str { .. } => self.string(),
                Mode::Ind { .. } => self.ind_string(),
                Mode::Path { start } => {
                    self.path_continue(start as usize);
                    true
                }
            };
            if !more {
                break;
            }
        }
        // Report the innermost literal still open at the end: that is where
        // the rest of the file was swallowed.
        let open = self.modes.iter().rev().find_map(|m| match *m {
            Mode::Str { open } => Some((false, open, 1)),
            Mode::Ind { open } => Some((true, open, 2)),
            Mode::Normal | Mode::Path { .. } => None,
        });
        if let Some((indented, open, len)) = open {
            self.eof_swallowed = true;
            self.errors.push(ParseError::UnterminatedString {
                indented,
                span: Span::new(self.file, open, open + len),
            });
        }
        let end = self.b.len();
        self.push(TokenKind::Eof, end, end);
    }

    /// Skips white space and comments. Returns false at the end of input.
    fn skip_trivia(&mut self) -> bool {
        loop {
            match self.at(self.pos) {
                b' ' | b'\t' | b'\n' | b'\r' => self.pos += 1,
                b'#' => {
                    while self.pos < self.b.len() && self.b[self.pos] != b'\n' {
                        self.pos += 1;
                    }
                }
                b'/' if self.at(self.pos + 1) == b'*' => {
                    let start = self.pos;
                    let mut i = self.pos + 2;
                    loop {
                        if i + 1 >= self.b.len() {
                            self.eof_swallowed = true;
                            self.errors.push(ParseError::UnterminatedComment {
                                span: self.span(start, start + 2),
                            });
                            self.pos = self.b.len();
                            return false;
                        }
                        if self.b[i] == b'*' && self.b[i + 1] == b'/' {
                            self.pos = i + 2;
                            break;
                        }
                        i += 1;
                    }
                }
                0 if self.pos >= self.b.len() => return false,
                _ => return true,
            }
        }
    }

    /// One token in normal mode. Returns false at the end of input.
    fn normal(&mut self) -> bool {
        use TokenKind as T;
        if !self.skip_trivia() {
            return false;
        }
        let s = self.pos;
        let c = self.b[s];
        let c1 = self.at(s + 1);
        match c {
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => self.word(s),
            b'0'..=b'9' => self.number_or_path(s),
            b'.' => {
                if c1.is_ascii_digit() {
                    self.number_or_path(s)
                } else if self.path_len(s) > 0 {
                    self.path_start(s)
                } else if c1 == b'.' && self.at(s + 2) == b'.' {
                    self.push(T::Ellipsis, s, s + 3)
                } else {
                    self.push(T::Dot, s, s + 1)
                }
            }
            b'+' | b'-' | b'/' if self.path_len(s) > 0 => self.path_start(s),
            b'+' if c1 == b'+' => self.push(T::Concat, s, s + 2),
            b'+' => self.push(T::Plus, s, s + 1),
            b'-' if c1 == b'>' => self.push(T::Arrow, s, s + 2),
            b'-' => self.push(T::Minus, s, s + 1),
            b'/' if c1 == b'/' => self.push(T::Update, s, s + 2),
            b'/' => self.push(T::Slash, s, s + 1),
            b'*' => self.push(T::Star, s, s + 1),
            b'"' => {
                self.push(T::StrOpen, s, s + 1);
                self.modes.push(Mode::Str { open: s as u32 });
            }
            b'\'' if c1 == b'\'' => {
                // `''` plus the rest of the line when it is only spaces.
                let mut e = s + 2;
                while self.at(e) == b' ' {
                    e += 1;
                }
                let end = if self.at(e) == b'\n' { e + 1 } else { s + 2 };
                self.push(T::IndOpen, s, end);
                self.modes.push(Mode::Ind { open: s as u32 });
            }
            b'$' if c1 == b'{' => {
                self.push(T::Interp, s, s + 2);
                self.modes.push(Mode::Normal);
            }
            b'{' => {
                self.push(T::LBrace, s, s + 1);
                self.modes.push(Mode::Normal);
            }
            b'}' => {
                self.push(T::RBrace, s, s + 1);
                if self.modes.len() > 1 {
                    self.modes.pop();
                }
            }
            b'[' => self.push(T::LBracket, s, s + 1),
            b']' => self.push(T::RBracket, s, s + 1),
            b'(' => self.push(T::LParen, s, s + 1),
            b')' => self.push(T::RParen, s, s + 1),
            b';' => self.push(T::Semi, s, s + 1),
            b':' => self.push(T::Colon, s, s + 1),
            b',' => self.push(T::Comma, s, s + 1),
            b'@' => self.push(T::At, s, s + 1),
            b'?' => self.push(T::Question, s, s + 1),
            b'=' if c1 == b'=' => self.push(T::EqEq, s, s + 2),
            b'=' => self.push(T::Assign, s, s + 1),
            b'!' if c1 == b'=' => self.push(T::NotEq, s, s + 2),
            b'!' => self.push(T::Bang, s, s + 1),
            b'<' => {
                let n = self.search_path_len(s);
                if n > 0 {
                    self.unsupported(Unsupported::SearchPath, s, s + n);
                } else if c1 == b'=' {
                    self.push(T::Le, s, s + 2);
                } else {
                    self.push(T::Lt, s, s + 1);
                }
            }
            b'>' if c1 == b'=' => self.push(T::Ge, s, s + 2),
            b'>' => self.push(T::Gt, s, s + 1),
            b'&' if c1 == b'&' => self.push(T::AndAnd, s, s + 2),
            b'|' if c1 == b'|' => self.push(T::OrOr, s, s + 2),
            b'~' if c1 == b'/' && (self.is(s + 2, PATH) || self.b[s + 2..].starts_with(b"${")) => {
                let mut e = s + 1;
                while self.at(e) == b'/' || self.is(e, PATH) {
                    e += 1;
                }
                self.unsupported(Unsupported::HomePath, s, e);
            }
            _ => self.unexpected_char(s),
        }
        true
    }

    fn unexpected_char(&mut self, s: usize) {
        let ch = self
            .src
            .get(s..)
            .and_then(|r| r.chars().next())
            .unwrap_or('\u{FFFD}');
        let hint = match ch {
            '&' => Some("logical and is written `&&`"),
            '|' => Some("logical or is written `||`"),
            '\'' => Some("strings are written \"...\" or ''...''"),
            '$' => Some("interpolation is written `${...}`, inside strings or attribute names"),
            '`' => Some("strings are written \"...\" or ''...''"),
            '%' => Some("there is no remainder operator; use `builtins` functions"),
            _ => None,
        };
        let end = s + ch.len_utf8().max(1);
        self.pos = end;
        if self.errors.len() >= super::MAX_ERRORS {
            return;
        }
        self.errors.push(ParseError::UnexpectedChar {
            ch,
            span: self.span(s, end),
            hint,
        });
    }

    fn unsupported(&mut self, what: Unsupported, s: usize, e: usize) {
        if self.errors.len() < super::MAX_ERRORS {
            self.errors.push(ParseError::Unsupported {
                what,
                span: self.span(s, e),
            });
        }
        self.push(TokenKind::Unsupported, s, e);
    }

    /// An identifier or keyword, unless a path or URI starting here is longer.
    fn word(&mut self, s: usize) {
        let mut e = s + 1;
        while self.is(e, IDENT) {
            e += 1;
        }
        // A longer path or URI needs one of these right after the name: path
        // characters are name characters plus `.` and `+`, and a URI scheme
        // ends with `:`.
        if !matches!(self.at(e), b'.' | b'+' | b'/' | b':') {
            self.keyword_or_ident(s, e);
            return;
        }
        let path = self.path_len(s);
        let uri = self.uri_len(s);
        if uri > e - s && uri >= path {
            self.unsupported(Unsupported::Uri, s, s + uri);
            return;
        }
        if path > e - s {
            self.path_start(s);
            return;
        }
        self.keyword_or_ident(s, e);
    }

    fn keyword_or_ident(&mut self, s: usize, e: usize) {
        let kind = match &self.b[s..e] {
            b"if" => TokenKind::If,
            b"then" => TokenKind::Then,
            b"else" => TokenKind::Else,
            b"let" => TokenKind::Let,
            b"in" => TokenKind::In,
            b"rec" => TokenKind::Rec,
            b"with" => TokenKind::With,
            b"assert" => TokenKind::Assert,
            b"inherit" => TokenKind::Inherit,
            b"or" => TokenKind::OrKw,
            _ => TokenKind::Ident,
        };
        self.push(kind, s, e);
    }

    /// An integer or float, unless a path starting here is longer.
    fn number_or_path(&mut self, s: usize) {
        let mut e = s;
        while self.is(e, DIGIT) {
            e += 1;
        }
        let mut float = false;
        if self.at(e) == b'.' {
            if self.is(e + 1, DIGIT) {
                e += 1;
                while self.is(e, DIGIT) {
                    e += 1;
                }
                float = true;
            } else if e > s && self.b[s] != b'0' {
                // `1.` is a float, as in Nix.
                e += 1;
                float = true;
            }
        }
        if matches!(self.at(e), b'e' | b'E') {
            let sign = usize::from(matches!(self.at(e + 1), b'+' | b'-'));
            if self.is(e + 1 + sign, DIGIT) {
                e += 1 + sign;
                while self.is(e, DIGIT) {
                    e += 1;
                }
                float = true;
            }
        }
        let path = self.path_len(s);
        if path > e - s {
            self.path_start(s);
            return;
        }
        if e == s {
            // Unreachable in practice: callers check for a digit.
            self.unexpected_char(s);
            return;
        }
        let kind = if float {
            TokenKind::Float
        } else {
            TokenKind::Int
        };
        self.push(kind, s, e);
    }

    /// Length of `[a-zA-Z0-9._+-]*`.
    fn path_chars(&self, mut i: usize) -> usize {
        let s = i;
        while self.is(i, PATH) {
            i += 1;
        }
        i - s
    }

    /// Length of a path starting at `s`: Nix's `PATH` (`chars (/ chars+)+ /?`)
    /// or `PATH_SEG` (`chars /`) when `${` follows. Zero if none.
    ///
    /// When there is none, there is none either from any offset inside the
    /// run of path characters (they all reach the same end), which is
    /// remembered so that long dotted names are scanned once.
    fn path_len(&mut self, s: usize) -> usize {
        if s < self.no_path_until {
            return 0;
        }
        let j = s + self.path_chars(s);
        let mut k = j;
        let mut segments = 0;
        while self.at(k) == b'/' && self.is(k + 1, PATH) {
            k += 1;
            k += self.path_chars(k);
            segments += 1;
        }
        if segments > 0 {
            if self.at(k) == b'/' {
                k += 1;
            }
            return k - s;
        }
        if self.at(j) == b'/' && self.b.get(j + 1..).is_some_and(|r| r.starts_with(b"${")) {
            return j + 1 - s;
        }
        self.no_path_until = j;
        0
    }

    /// Length of a URI (`scheme:rest`) starting at `s`, or zero.
    fn uri_len(&mut self, s: usize) -> usize {
        if s < self.no_uri_until {
            return 0;
        }
        let mut i = s + 1;
        while self.is(i, SCHEME) {
            i += 1;
        }
        if self.at(i) != b':' || !self.is(i + 1, URI) {
            // Likewise for every start inside the scheme characters.
            self.no_uri_until = i;
            return 0;
        }
        i += 1;
        while self.is(i, URI) {
            i += 1;
        }
        i - s
    }

    /// Length of `<chars(/chars)*>` at `s`, or zero.
    fn search_path_len(&self, s: usize) -> usize {
        let mut i = s + 1;
        let n = self.path_chars(i);
        if n == 0 {
            return 0;
        }
        i += n;
        while self.at(i) == b'/' {
            let n = self.path_chars(i + 1);
            if n == 0 {
                return 0;
            }
            i += 1 + n;
        }
        if self.at(i) == b'>' { i + 1 - s } else { 0 }
    }

    /// Starts a path at `s`; the rest is lexed in [`Mode::Path`].
    fn path_start(&mut self, s: usize) {
        let n = self.path_len(s);
        self.push(TokenKind::PathText, s, s + n);
        self.modes.push(Mode::Path { start: s as u32 });
    }

    /// Continues a path: `${`, more path text, or its end.
    fn path_continue(&mut self, start: usize) {
        let p = self.pos;
        if self.b.get(p..).is_some_and(|r| r.starts_with(b"${")) {
            self.push(TokenKind::Interp, p, p + 2);
            self.modes.push(Mode::Normal);
            return;
        }
        let chars = self.path_chars(p);
        let seg = if self.at(p + chars) == b'/' {
            chars + 1
        } else {
            0
        };
        let n = self.path_len(p).max(seg).max(chars);
        if n > 0 {
            self.push(TokenKind::PathText, p, p + n);
            return;
        }
        if p > start && self.b[p - 1] == b'/' && self.errors.len() < super::MAX_ERRORS {
            let text = self.src.get(start..p).unwrap_or("").to_string();
            self.errors.push(ParseError::TrailingSlash {
                text,
                span: self.span(start, p),
            });
        }
        self.push(TokenKind::PathEnd, p, p);
        self.modes.pop();
    }

    /// One piece of a `"..."` string. Returns false at the end of input.
    fn string(&mut self) -> bool {
        let s = self.pos;
        if s >= self.b.len() {
            return false;
        }
        match self.b[s] {
            b'"' => {
                self.push(TokenKind::StrClose, s, s + 1);
                self.modes.pop();
                return true;
            }
            b'$' if self.at(s + 1) == b'{' => {
                self.push(TokenKind::Interp, s, s + 2);
                self.modes.push(Mode::Normal);
                return true;
            }
            _ => {}
        }
        let mut i = s;
        while i < self.b.len() {
            match self.b[i] {
                b'"' => break,
                b'\\' => i += 2,
                b'$' => match self.b.get(i + 1) {
                    Some(b'{') => break,
                    Some(b'"' | b'\\') | None => i += 1,
                    Some(_) => i += 2,
                },
                _ => i += 1,
            }
        }
        let i = self.char_boundary(i);
        self.push(TokenKind::StrText, s, i);
        true
    }

    /// One piece of an indented string. Returns false at the end of input.
    fn ind_string(&mut self) -> bool {
        let s = self.pos;
        if s >= self.b.len() {
            return false;
        }
        let c1 = self.at(s + 1);
        match self.b[s] {
            b'\'' if c1 == b'\'' => {
                match self.at(s + 2) {
                    b'\'' | b'$' => self.push(TokenKind::IndEscape, s, s + 3),
                    b'\\' if s + 3 < self.b.len() => {
                        let len = self.src.get(s + 3..).and_then(|r| r.chars().next());
                        let e = s + 3 + len.map_or(1, char::len_utf8);
                        self.push(TokenKind::IndEscape, s, e);
                    }
                    _ => {
                        self.push(TokenKind::IndClose, s, s + 2);
                        self.modes.pop();
                    }
                }
                return true;
            }
            b'\'' if c1 == b'$' || s + 1 >= self.b.len() => {
                self.push(TokenKind::IndEscape, s, s + 1);
                return true;
            }
            b'$' if c1 == b'{' => {
                self.push(TokenKind::Interp, s, s + 2);
                self.modes.push(Mode::Normal);
                return true;
            }
            b'$' if c1 == b'\'' || s + 1 >= self.b.len() => {
                self.push(TokenKind::IndEscape, s, s + 1);
                return true;
            }
            _ => {}
        }
        let mut i = s;
        while i < self.b.len() {
            match self.b[i] {
                b'$' => match self.b.get(i + 1) {
                    Some(b'{' | b'\'') | None => break,
                    Some(_) => i += 2,
                },
                b'\'' => match self.b.get(i + 1) {
                    Some(b'\'' | b'$') | None => break,
                    Some(_) => i += 2,
                },
                _ => i += 1,
            }
        }
        let i = self.char_boundary(i);
        self.push(TokenKind::IndText, s, i);
        true
    }

    /// The first char boundary at or after `i` (clamped to the input).
    fn char_boundary(&self, mut i: usize) -> usize {
        i = i.min(self.b.len());
        while !self.src.is_char_boundary(i) {
            i += 1;
        }
        i
    }
}
