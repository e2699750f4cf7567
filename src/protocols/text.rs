//! Evennia colour markup (`|r`, `|[b`, `|500`, `|=m`, `|#ff8800`, `|u`, `|/`, `||`, ...)
//! and its three renderings: ANSI SGR sequences for telnet ([`to_ansi`]), HTML spans for
//! the websocket client ([`to_html`]) and plain text ([`strip`]).
//!
//! This module is the only place that knows the markup grammar and the only place that
//! writes colour escape sequences or colour spans. Everything else passes text with
//! markup and a [`RenderOptions`] and sends on what it gets back. The functions here are
//! pure. They do no I/O and no logging, and they never decide what a client supports
//! (the caller picks the [`ColorMode`]). They never fail and never panic, whatever the
//! input. They also never sanitise text that is not markup: raw control characters go
//! through [`to_ansi`] and [`strip`] unchanged, and only [`to_html`] drops them, because
//! HTML has no way to show them.
//!
//! The grammar, after a `|`:
//!
//! | markup | meaning |
//! |---|---|
//! | `n` | reset everything |
//! | `r g y b m c w x` | bright foreground (sets hilite); upper case: normal (clears hilite) |
//! | `!R` ... `!X` | normal foreground that leaves hilite as it is |
//! | `[R` ... `[X` | background; `[r` ... `[x`: bright background (an xterm256 colour) |
//! | `h` / `H` | hilite on / off |
//! | `u`/`U`, `i`/`I`, `s`/`S` | underline, italic, strikethrough on / off |
//! | `*`, `^` | inverse, blink |
//! | `/`, `-`, `>`, `_` | newline, tab, four-space indent, space |
//! | `123` / `[123` | xterm256 colour cube, each digit 0-5 (foreground / background) |
//! | `=a` ... `=z` / `[=a` | xterm256 greyscale, black to white |
//! | `#RRGGBB`, `#RGB` / `[#...` | truecolor |
//! | `\|` | a literal `\|` |
//!
//! Anything else after a `|` is not markup: the `|` and the character after it are text.

use crate::session::ProtocolFlags;

/// How to render markup for one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorMode {
    /// No colour and no text attributes at all; layout markup (`|/`, `|-`, `|>`, `|_`,
    /// `||`) still renders.
    None,
    /// The 16 ANSI colours: bright is bold (`ESC[1;31m`), and every xterm256, greyscale
    /// and truecolor colour is mapped to the nearest of the 16.
    Ansi,
    /// The xterm 256-colour palette (`ESC[38;5;Nm`); truecolor is mapped to the nearest
    /// palette entry.
    Xterm256,
    /// 24-bit colour (`ESC[38;2;R;G;Bm`) for `|#...` markup; everything else as in
    /// `Xterm256`.
    TrueColor,
}

/// Everything that decides how markup renders for one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOptions {
    pub color: ColorMode,
    /// Renders as [`ColorMode::None`] whatever `color` says, and also drops lines that
    /// are only decoration (`=====`, `+---+---+`), which screen readers read out as
    /// noise.
    pub screenreader: bool,
}

impl RenderOptions {
    /// The options a client's negotiated (or chosen) flags ask for, with Evennia's order
    /// of precedence: `nocolor` beats everything, truecolor beats xterm256, xterm256
    /// beats ANSI.
    #[must_use]
    pub fn for_client(flags: &ProtocolFlags) -> Self {
        let color = if flags.nocolor {
            ColorMode::None
        } else if flags.truecolor {
            ColorMode::TrueColor
        } else if flags.xterm256 {
            ColorMode::Xterm256
        } else if flags.ansi {
            ColorMode::Ansi
        } else {
            ColorMode::None
        };
        Self {
            color,
            screenreader: flags.screenreader,
        }
    }
}

/// Renders markup as text for a terminal.
///
/// Escape sequences are written only when text follows them, and each one carries the
/// whole change since the last (`|r|uX` is one `ESC[1;31;4m`). If any was written, the
/// result ends with `ESC[0m`, so colour never leaks into the next message. Line breaks
/// are `\n`; the telnet encoder turns them into CR LF.
#[must_use]
pub fn to_ansi(text: &str, opts: RenderOptions) -> String {
    if opts.screenreader {
        return drop_decoration_lines(&strip(text));
    }
    match opts.color {
        ColorMode::None => strip(text),
        mode => render_sgr(text, mode),
    }
}

/// Renders markup as HTML for the websocket client.
///
/// Text is escaped (`& < > " '`). Each run of text with one style is in one
/// `<span>` and spans are never nested: a style change closes the open span and opens
/// the next one, and the last is closed at the end. Palette colours are classes, as in
/// Evennia's webclient: `color-NNN` and `bgcolor-NNN` with NNN the xterm256 index
/// (bright ANSI colours are 8-15). The default light grey on black gets no class.
/// Truecolor is an inline `style="color:#rrggbb"` or `background-color:#rrggbb`.
/// Attributes are the classes `underline`, `italic`, `strikethrough` and `blink`, and
/// inverse swaps the foreground and background. `|/` and line breaks become `<br>`, a
/// tab becomes four `&nbsp;`, and a space that HTML would collapse (at the start of a
/// line or after another space) becomes `&nbsp;`.
#[must_use]
pub fn to_html(text: &str) -> String {
    let mut html = HtmlWriter::new(text.len());
    for token in Lexer::new(text) {
        match token {
            Token::Code(code) => html.wanted.apply(code),
            Token::Text(s) => s.chars().for_each(|c| html.push_char(c)),
        }
    }
    html.finish()
}

/// Makes `text` show exactly as typed: every `|` is doubled, so a player's
/// words cannot carry colour codes or a `|/` line break into what others read.
pub fn verbatim(text: &str) -> String {
    text.replace('|', "||")
}

/// Renders markup as plain text: colours and attributes are dropped, layout markup
/// becomes the whitespace it stands for, and `||` becomes `|`.
#[must_use]
pub fn strip(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for token in Lexer::new(text) {
        if let Token::Text(s) = token {
            out.push_str(s);
        }
    }
    out
}

const RESET: &str = "\x1b[0m";

/// The RGB levels of the xterm256 colour cube (indices 16-231), per channel.
const CUBE_LEVELS: [u8; 6] = [0, 95, 135, 175, 215, 255];

/// Reference RGB values for the 16 ANSI colours when down-sampling: the HTML 4 / VGA
/// palette. Its bright colours are the pure primaries, so `|500` and `|#ff0000` land on
/// bright red, and normal colours sit halfway, so `|200` lands on normal red.
const ANSI16_RGB: [(u8, u8, u8); 16] = [
    (0, 0, 0),
    (128, 0, 0),
    (0, 128, 0),
    (128, 128, 0),
    (0, 0, 128),
    (128, 0, 128),
    (0, 128, 128),
    (192, 192, 192),
    (128, 128, 128),
    (255, 0, 0),
    (0, 255, 0),
    (255, 255, 0),
    (0, 0, 255),
    (255, 0, 255),
    (0, 255, 255),
    (255, 255, 255),
];

/// A colour as the markup names it, or as down-sampling left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Color {
    /// One of the 8 ANSI colours (0 black ... 7 white). Whether it shows bright is the
    /// hilite attribute, as on a terminal.
    Base(u8),
    /// An xterm256 palette index from 16 to 255 (the cube and the greyscale ramp).
    Xterm(u8),
    Rgb(u8, u8, u8),
}

/// One markup code other than layout (layout is plain text to every renderer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    Reset,
    /// `hilite` is `Some` when the code also sets hilite, as the letter colours do.
    Fg {
        color: Color,
        hilite: Option<bool>,
    },
    Bg(Color),
    Hilite(bool),
    Underline(bool),
    Italic(bool),
    Strike(bool),
    Inverse,
    Blink,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    /// Text to show as it is: a run between markup, an unknown `|x`, `|` from `||`, or
    /// the whitespace a layout code stands for.
    Text(&'a str),
    Code(Code),
}

/// Splits marked-up text into [`Token`]s. It only ever cuts the input where `find` or
/// `chars` put a boundary, so it cannot split a UTF-8 character.
struct Lexer<'a> {
    rest: &'a str,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Self { rest: text }
    }

    /// Lexes the markup at the start of `self.rest`, which begins with `|`.
    fn markup(&mut self) -> Token<'a> {
        let seq = self.rest;
        let mut chars = seq.chars();
        chars.next();
        let after_pipe = chars.as_str();
        let Some(c) = chars.next() else {
            // A lone `|` at the very end is text.
            self.rest = "";
            return Token::Text(seq);
        };
        let rest = chars.as_str();
        let parsed: Option<(Token<'a>, &'a str)> = match c {
            '|' => Some((Token::Text("|"), rest)),
            '/' => Some((Token::Text("\n"), rest)),
            '-' => Some((Token::Text("\t"), rest)),
            '>' => Some((Token::Text("    "), rest)),
            '_' => Some((Token::Text(" "), rest)),
            '!' => plain_fg(rest),
            '[' => background(rest).map(|(color, rest)| (Token::Code(Code::Bg(color)), rest)),
            '=' => greyscale(rest).map(|(color, rest)| (fg_code(color), rest)),
            '#' => hex(rest).map(|(color, rest)| (fg_code(color), rest)),
            '0'..='5' => cube(after_pipe).map(|(color, rest)| (fg_code(color), rest)),
            _ => simple_code(c).map(|code| (Token::Code(code), rest)),
        };
        match parsed {
            Some((token, rest)) => {
                self.rest = rest;
                token
            }
            None => {
                // Not markup: the `|` and the one character after it are text, and
                // lexing goes on right after that character.
                self.rest = rest;
                let literal = seq.split_at_checked(1 + c.len_utf8());
                Token::Text(literal.map_or(seq, |(literal, _)| literal))
            }
        }
    }
}

impl<'a> Iterator for Lexer<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        if self.rest.starts_with('|') {
            return Some(self.markup());
        }
        let end = self.rest.find('|').unwrap_or(self.rest.len());
        let (text, rest) = self.rest.split_at_checked(end).unwrap_or((self.rest, ""));
        self.rest = rest;
        Some(Token::Text(text))
    }
}

/// The codes that are one character after the `|`.
fn simple_code(c: char) -> Option<Code> {
    let code = match c {
        'n' => Code::Reset,
        'h' => Code::Hilite(true),
        'H' => Code::Hilite(false),
        'u' => Code::Underline(true),
        'U' => Code::Underline(false),
        'i' => Code::Italic(true),
        'I' => Code::Italic(false),
        's' => Code::Strike(true),
        'S' => Code::Strike(false),
        '*' => Code::Inverse,
        '^' => Code::Blink,
        _ => {
            let base = base_index(c)?;
            Code::Fg {
                color: Color::Base(base),
                hilite: Some(c.is_ascii_lowercase()),
            }
        }
    };
    Some(code)
}

/// `x r g y b m c w` (either case) to the ANSI colour number 0-7.
fn base_index(c: char) -> Option<u8> {
    match c.to_ascii_lowercase() {
        'x' => Some(0),
        'r' => Some(1),
        'g' => Some(2),
        'y' => Some(3),
        'b' => Some(4),
        'm' => Some(5),
        'c' => Some(6),
        'w' => Some(7),
        _ => None,
    }
}

/// A foreground code for a colour that leaves hilite alone (xterm256 and truecolor).
fn fg_code<'a>(color: Color) -> Token<'a> {
    Token::Code(Code::Fg {
        color,
        hilite: None,
    })
}

/// `|!R` ... `|!X`: a normal colour that keeps the current hilite. Evennia has only the
/// upper-case forms.
fn plain_fg(s: &str) -> Option<(Token<'_>, &str)> {
    let mut chars = s.chars();
    let c = chars.next().filter(char::is_ascii_uppercase)?;
    let base = base_index(c)?;
    let code = Code::Fg {
        color: Color::Base(base),
        hilite: None,
    };
    Some((Token::Code(code), chars.as_str()))
}

/// What follows `|[`. Bright backgrounds are xterm256 colours, as in Evennia, because
/// ANSI has no bright background; down-sampling turns them back into ANSI ones.
fn background(s: &str) -> Option<(Color, &str)> {
    let mut chars = s.chars();
    let c = chars.next()?;
    match c {
        '=' => greyscale(chars.as_str()),
        '#' => hex(chars.as_str()),
        '0'..='5' => cube(s),
        _ => {
            let base = base_index(c)?;
            let color = if c.is_ascii_uppercase() {
                Color::Base(base)
            } else {
                let (r, g, b) = match base {
                    0 => (2, 2, 2),
                    1 => (5, 0, 0),
                    2 => (0, 5, 0),
                    3 => (5, 5, 0),
                    4 => (0, 0, 5),
                    5 => (5, 0, 5),
                    6 => (0, 5, 5),
                    _ => (5, 5, 5),
                };
                Color::Xterm(cube_index(r, g, b))
            };
            Some((color, chars.as_str()))
        }
    }
}

/// Three digits 0-5: the xterm256 colour cube.
fn cube(s: &str) -> Option<(Color, &str)> {
    let mut chars = s.chars();
    let mut digit = || {
        chars
            .next()
            .and_then(|c| c.to_digit(6))
            .and_then(|d| u8::try_from(d).ok())
    };
    let (r, g, b) = (digit()?, digit()?, digit()?);
    Some((Color::Xterm(cube_index(r, g, b)), chars.as_str()))
}

fn cube_index(r: u8, g: u8, b: u8) -> u8 {
    16 + 36 * r + 6 * g + b
}

/// `a` to `z`: black, the 24 steps of the xterm greyscale ramp, white. Black and white
/// come from the cube because the ramp stops short of both.
fn greyscale(s: &str) -> Option<(Color, &str)> {
    let mut chars = s.chars();
    let c = chars.next().filter(char::is_ascii_lowercase)?;
    let index = match c {
        'a' => 16,
        'z' => 231,
        // 'b' ..= 'y' are exactly the 24 ramp entries 232 ..= 255.
        _ => 232 + (u8::try_from(c).ok()? - b'b'),
    };
    Some((Color::Xterm(index), chars.as_str()))
}

/// `RRGGBB` or `RGB`. A three-digit form followed by a fourth hex digit is neither, so
/// it is left as text rather than guessed at.
fn hex(s: &str) -> Option<(Color, &str)> {
    let digits: Vec<(u8, &str)> = {
        let mut chars = s.chars();
        let mut digits = Vec::with_capacity(6);
        while digits.len() < 6 {
            let Some(d) = chars.next().and_then(|c| c.to_digit(16)) else {
                break;
            };
            digits.push((u8::try_from(d).ok()?, chars.as_str()));
        }
        digits
    };
    match digits.as_slice() {
        [r1, r2, g1, g2, b1, b2] => Some((
            Color::Rgb(r1.0 * 16 + r2.0, g1.0 * 16 + g2.0, b1.0 * 16 + b2.0),
            b2.1,
        )),
        [r, g, b] => Some((Color::Rgb(r.0 * 17, g.0 * 17, b.0 * 17), b.1)),
        _ => None,
    }
}

/// Everything a run of text is shown with. `Default` is the terminal's own style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Style {
    fg: Option<Color>,
    bg: Option<Color>,
    hilite: bool,
    underline: bool,
    italic: bool,
    strike: bool,
    inverse: bool,
    blink: bool,
}

impl Style {
    fn apply(&mut self, code: Code) {
        match code {
            Code::Reset => *self = Style::default(),
            Code::Fg { color, hilite } => {
                self.fg = Some(color);
                if let Some(hilite) = hilite {
                    self.hilite = hilite;
                }
            }
            Code::Bg(color) => self.bg = Some(color),
            Code::Hilite(on) => self.hilite = on,
            Code::Underline(on) => self.underline = on,
            Code::Italic(on) => self.italic = on,
            Code::Strike(on) => self.strike = on,
            Code::Inverse => self.inverse = true,
            Code::Blink => self.blink = true,
        }
    }
}

/// Rewrites a code's colour into one the mode can show. In ANSI mode a down-sampled
/// foreground also sets hilite, since bold is how ANSI shows the bright half.
fn downsample(code: Code, mode: ColorMode) -> Code {
    match (mode, code) {
        (ColorMode::Ansi, Code::Fg { color, hilite }) => match color {
            Color::Base(_) => Code::Fg { color, hilite },
            Color::Xterm(_) | Color::Rgb(..) => {
                let nearest = nearest_ansi16(color_rgb(color));
                Code::Fg {
                    color: Color::Base(nearest % 8),
                    hilite: Some(nearest >= 8),
                }
            }
        },
        (ColorMode::Ansi, Code::Bg(color @ (Color::Xterm(_) | Color::Rgb(..)))) => {
            // ANSI backgrounds have no bright half, so a bright match uses its base.
            Code::Bg(Color::Base(nearest_ansi16(color_rgb(color)) % 8))
        }
        (ColorMode::Xterm256, Code::Fg { color, hilite }) => Code::Fg {
            color: to_xterm(color),
            hilite,
        },
        (ColorMode::Xterm256, Code::Bg(color)) => Code::Bg(to_xterm(color)),
        _ => code,
    }
}

fn to_xterm(color: Color) -> Color {
    match color {
        Color::Rgb(r, g, b) => Color::Xterm(nearest_xterm256((r, g, b))),
        other => other,
    }
}

/// The RGB a colour stands for, to measure distances with.
fn color_rgb(color: Color) -> (u8, u8, u8) {
    match color {
        Color::Base(i) | Color::Xterm(i) => xterm_rgb(i),
        Color::Rgb(r, g, b) => (r, g, b),
    }
}

/// The RGB of an xterm256 palette index (0-15 from [`ANSI16_RGB`]). Lookups use `get`
/// so that no arithmetic slip can turn into a panic; every index is in range anyway.
fn xterm_rgb(index: u8) -> (u8, u8, u8) {
    let level = |i: u8| CUBE_LEVELS.get(usize::from(i)).copied().unwrap_or(0);
    match index {
        0..=15 => ANSI16_RGB
            .get(usize::from(index))
            .copied()
            .unwrap_or((0, 0, 0)),
        16..=231 => {
            let i = index - 16;
            (level(i / 36), level((i / 6) % 6), level(i % 6))
        }
        232..=255 => {
            let v = 8 + 10 * (index - 232);
            (v, v, v)
        }
    }
}

fn distance((r1, g1, b1): (u8, u8, u8), (r2, g2, b2): (u8, u8, u8)) -> u32 {
    let d = |a: u8, b: u8| u32::from(a.abs_diff(b)).pow(2);
    d(r1, r2) + d(g1, g2) + d(b1, b2)
}

/// The palette index in `range` closest to `rgb`; ties go to the lower index.
fn nearest_in(rgb: (u8, u8, u8), range: std::ops::RangeInclusive<u8>) -> u8 {
    let start = *range.start();
    range
        .min_by_key(|&i| (distance(rgb, xterm_rgb(i)), i))
        .unwrap_or(start)
}

/// Nearest of the 16 ANSI colours (0-7 normal, 8-15 bright).
fn nearest_ansi16(rgb: (u8, u8, u8)) -> u8 {
    nearest_in(rgb, 0..=15)
}

/// Nearest entry of the cube or the greyscale ramp. The first 16 entries are left out
/// because clients theme them, so their RGB is unknown.
fn nearest_xterm256(rgb: (u8, u8, u8)) -> u8 {
    nearest_in(rgb, 16..=255)
}

/// Renders with SGR escape sequences in a colour mode other than `None`.
fn render_sgr(text: &str, mode: ColorMode) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut wanted = Style::default();
    let mut shown = Style::default();
    let mut wrote_sgr = false;
    for token in Lexer::new(text) {
        match token {
            Token::Code(code) => wanted.apply(downsample(code, mode)),
            Token::Text(s) => {
                if wanted != shown {
                    push_sgr(&shown, &wanted, &mut out);
                    shown = wanted;
                    wrote_sgr = true;
                }
                out.push_str(s);
            }
        }
    }
    if wrote_sgr {
        out.push_str(RESET);
    }
    out
}

/// Writes one `ESC[...m` that takes the terminal from `from` to `to`. Going back to
/// the default style is a plain reset; otherwise only what changed is written, each
/// attribute with its own on or off code, so nothing else is disturbed.
fn push_sgr(from: &Style, to: &Style, out: &mut String) {
    if *to == Style::default() {
        out.push_str(RESET);
        return;
    }
    let mut params: Vec<String> = Vec::new();
    if from.hilite != to.hilite {
        params.push(if to.hilite { "1" } else { "22" }.to_owned());
    }
    if from.fg != to.fg {
        params.push(match to.fg {
            Some(color) => color_params(color, 3),
            None => "39".to_owned(),
        });
    }
    if from.bg != to.bg {
        params.push(match to.bg {
            Some(color) => color_params(color, 4),
            None => "49".to_owned(),
        });
    }
    let toggles = [
        (from.italic, to.italic, "3", "23"),
        (from.underline, to.underline, "4", "24"),
        (from.blink, to.blink, "5", "25"),
        (from.inverse, to.inverse, "7", "27"),
        (from.strike, to.strike, "9", "29"),
    ];
    for (was, is, on, off) in toggles {
        if was != is {
            params.push(if is { on } else { off }.to_owned());
        }
    }
    out.push_str("\x1b[");
    out.push_str(&params.join(";"));
    out.push('m');
}

/// SGR parameters for a colour; `layer` is 3 for foreground, 4 for background.
fn color_params(color: Color, layer: u8) -> String {
    match color {
        Color::Base(i) => format!("{layer}{i}"),
        Color::Xterm(i) => format!("{layer}8;5;{i}"),
        Color::Rgb(r, g, b) => format!("{layer}8;2;{r};{g};{b}"),
    }
}

/// Drops every line that is only decoration, with its line break.
fn drop_decoration_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.strip_suffix('\n').unwrap_or(line);
        if !is_decoration_line(body) {
            out.push_str(line);
        }
    }
    out
}

/// Three or more of `= - _ * ~ +` and nothing else but whitespace. Mixed characters
/// count, so table borders such as `+----+----+` go as well.
fn is_decoration_line(line: &str) -> bool {
    let mut marks = 0usize;
    for c in line.chars() {
        if c.is_whitespace() {
            continue;
        }
        if !matches!(c, '=' | '-' | '_' | '*' | '~' | '+') {
            return false;
        }
        marks += 1;
    }
    marks >= 3
}

/// A palette colour (CSS class) or an RGB one (inline style), for HTML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HtmlColor {
    Index(u8),
    Hex(u8, u8, u8),
}

/// The palette index the webclient's stylesheet uses for the default foreground.
const HTML_DEFAULT_FG: u8 = 7;
/// ... and for the default background.
const HTML_DEFAULT_BG: u8 = 0;

/// The attributes of the `<span>` for a style, with a leading space, or "" when the
/// style looks like the default and needs no span.
fn span_attrs(style: &Style) -> String {
    let fg = match style.fg {
        None if style.hilite => HtmlColor::Index(HTML_DEFAULT_FG + 8),
        None => HtmlColor::Index(HTML_DEFAULT_FG),
        Some(Color::Base(i)) => HtmlColor::Index(if style.hilite { i + 8 } else { i }),
        // Hilite only brightens the ANSI colours, as on a terminal.
        Some(Color::Xterm(i)) => HtmlColor::Index(i),
        Some(Color::Rgb(r, g, b)) => HtmlColor::Hex(r, g, b),
    };
    let bg = match style.bg {
        None => HtmlColor::Index(HTML_DEFAULT_BG),
        Some(Color::Base(i) | Color::Xterm(i)) => HtmlColor::Index(i),
        Some(Color::Rgb(r, g, b)) => HtmlColor::Hex(r, g, b),
    };
    let (fg, bg) = if style.inverse { (bg, fg) } else { (fg, bg) };

    let mut classes: Vec<String> = Vec::new();
    let mut css: Vec<String> = Vec::new();
    match fg {
        HtmlColor::Index(HTML_DEFAULT_FG) => {}
        HtmlColor::Index(i) => classes.push(format!("color-{i:03}")),
        HtmlColor::Hex(r, g, b) => css.push(format!("color:#{r:02x}{g:02x}{b:02x}")),
    }
    match bg {
        HtmlColor::Index(HTML_DEFAULT_BG) => {}
        HtmlColor::Index(i) => classes.push(format!("bgcolor-{i:03}")),
        HtmlColor::Hex(r, g, b) => {
            css.push(format!("background-color:#{r:02x}{g:02x}{b:02x}"));
        }
    }
    let flags = [
        (style.underline, "underline"),
        (style.italic, "italic"),
        (style.strike, "strikethrough"),
        (style.blink, "blink"),
    ];
    classes.extend(
        flags
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, name)| (*name).to_owned()),
    );

    let mut attrs = String::new();
    if !classes.is_empty() {
        attrs.push_str(" class=\"");
        attrs.push_str(&classes.join(" "));
        attrs.push('"');
    }
    if !css.is_empty() {
        attrs.push_str(" style=\"");
        attrs.push_str(&css.join(";"));
        attrs.push('"');
    }
    attrs
}

/// Accumulates HTML output, one character at a time, with the span and whitespace
/// state that needs.
struct HtmlWriter {
    out: String,
    /// The style the markup so far asks for.
    wanted: Style,
    /// The style the open span (or the lack of one) was made for.
    shown: Style,
    /// Attributes of the open span; "" when none is open.
    open: String,
    /// The last thing written was a space or a line break (or nothing), so a space now
    /// would collapse in HTML and must be `&nbsp;`.
    after_space: bool,
    /// The last character was `\r`, so a `\n` now is the same line break.
    after_cr: bool,
}

impl HtmlWriter {
    fn new(capacity: usize) -> Self {
        Self {
            out: String::with_capacity(capacity + capacity / 4),
            wanted: Style::default(),
            shown: Style::default(),
            open: String::new(),
            after_space: true,
            after_cr: false,
        }
    }

    /// Makes the open span match the wanted style before anything is written.
    fn sync_span(&mut self) {
        if self.wanted == self.shown {
            return;
        }
        self.shown = self.wanted;
        let attrs = span_attrs(&self.wanted);
        if attrs == self.open {
            return;
        }
        if !self.open.is_empty() {
            self.out.push_str("</span>");
        }
        if !attrs.is_empty() {
            self.out.push_str("<span");
            self.out.push_str(&attrs);
            self.out.push('>');
        }
        self.open = attrs;
    }

    fn push_char(&mut self, c: char) {
        let after_cr = std::mem::replace(&mut self.after_cr, c == '\r');
        if c == '\n' && after_cr {
            return;
        }
        // Control characters (a raw ESC, a bell) have no HTML form; dropping them keeps
        // stray escape sequences from showing up as noise.
        if c.is_control() && !matches!(c, '\n' | '\r' | '\t') {
            return;
        }
        self.sync_span();
        match c {
            '\n' | '\r' => {
                self.out.push_str("<br>");
                self.after_space = true;
            }
            '\t' => {
                self.out.push_str("&nbsp;&nbsp;&nbsp;&nbsp;");
                self.after_space = true;
            }
            ' ' => {
                self.out
                    .push_str(if self.after_space { "&nbsp;" } else { " " });
                self.after_space = true;
            }
            _ => {
                match c {
                    '&' => self.out.push_str("&amp;"),
                    '<' => self.out.push_str("&lt;"),
                    '>' => self.out.push_str("&gt;"),
                    '"' => self.out.push_str("&quot;"),
                    '\'' => self.out.push_str("&#x27;"),
                    _ => self.out.push(c),
                }
                self.after_space = false;
            }
        }
    }

    fn finish(mut self) -> String {
        if !self.open.is_empty() {
            self.out.push_str("</span>");
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: RenderOptions = RenderOptions {
        color: ColorMode::None,
        screenreader: false,
    };
    const ANSI: RenderOptions = RenderOptions {
        color: ColorMode::Ansi,
        screenreader: false,
    };
    const XTERM: RenderOptions = RenderOptions {
        color: ColorMode::Xterm256,
        screenreader: false,
    };
    const TRUE: RenderOptions = RenderOptions {
        color: ColorMode::TrueColor,
        screenreader: false,
    };
    const ALL: [RenderOptions; 4] = [NONE, ANSI, XTERM, TRUE];

    /// `ESC[<params>m` + `text` + the final reset.
    fn sgr(params: &str, text: &str) -> String {
        format!("\x1b[{params}m{text}\x1b[0m")
    }

    /// Checks one input in the four modes: (none, ansi, xterm256, truecolor).
    fn check(input: &str, expected: [&str; 4]) {
        for (opts, want) in ALL.into_iter().zip(expected) {
            assert_eq!(to_ansi(input, opts), want, "{input:?} in {:?}", opts.color);
        }
    }

    #[test]
    fn bright_letter_colours_are_bold_in_every_colour_mode() {
        for (i, letter) in "xrgybmcw".chars().enumerate() {
            let input = format!("|{letter}X");
            let want = sgr(&format!("1;3{i}"), "X");
            check(&input, ["X", &want, &want, &want]);
        }
    }

    #[test]
    fn normal_letter_colours_are_plain_sgr() {
        for (i, letter) in "XRGYBMCW".chars().enumerate() {
            let input = format!("|{letter}X");
            let want = sgr(&format!("3{i}"), "X");
            check(&input, ["X", &want, &want, &want]);
        }
    }

    #[test]
    fn normal_backgrounds_are_ansi_in_every_colour_mode() {
        for (i, letter) in "XRGYBMCW".chars().enumerate() {
            let input = format!("|[{letter}X");
            let want = sgr(&format!("4{i}"), "X");
            check(&input, ["X", &want, &want, &want]);
        }
    }

    #[test]
    fn bright_backgrounds_are_xterm_colours_down_sampled_in_ansi() {
        let cases = [
            ('r', 1, 196),
            ('g', 2, 46),
            ('y', 3, 226),
            ('b', 4, 21),
            ('m', 5, 201),
            ('c', 6, 51),
            ('w', 7, 231),
            ('x', 0, 102),
        ];
        for (letter, ansi, xterm) in cases {
            let input = format!("|[{letter}X");
            let a = sgr(&format!("4{ansi}"), "X");
            let x = sgr(&format!("48;5;{xterm}"), "X");
            check(&input, ["X", &a, &x, &x]);
        }
    }

    #[test]
    fn attribute_codes() {
        let cases = [
            ("|hX", "1"),
            ("|uX", "4"),
            ("|iX", "3"),
            ("|sX", "9"),
            ("|*X", "7"),
            ("|^X", "5"),
        ];
        for (input, params) in cases {
            let want = sgr(params, "X");
            check(input, ["X", &want, &want, &want]);
        }
    }

    #[test]
    fn attribute_off_codes() {
        // A background stays on, so turning the attribute off is not a full reset.
        let cases = [
            ("|[R|hA|HB", "1;41", "22"),
            ("|[R|uA|UB", "41;4", "24"),
            ("|[R|iA|IB", "41;3", "23"),
            ("|[R|sA|SB", "41;9", "29"),
        ];
        for (input, on, off) in cases {
            let want = format!("\x1b[{on}mA\x1b[{off}mB\x1b[0m");
            check(input, ["AB", &want, &want, &want]);
        }
        // Back to the default style is a plain reset.
        let want = "\x1b[1mA\x1b[0mB\x1b[0m";
        check("|hA|HB", ["AB", want, want, want]);
    }

    #[test]
    fn an_attribute_turned_off_before_any_text_writes_nothing() {
        check("|u|UX", ["X", "X", "X", "X"]);
        check("|r|nX", ["X", "X", "X", "X"]);
        check("X|r", ["X", "X", "X", "X"]);
    }

    #[test]
    fn layout_codes_render_in_every_mode() {
        check("a|/b", ["a\nb"; 4]);
        check("a|-b", ["a\tb"; 4]);
        check("|>b", ["    b"; 4]);
        check("a|_b", ["a b"; 4]);
    }

    #[test]
    fn double_pipe_is_a_literal_pipe() {
        check("a||b", ["a|b"; 4]);
        check("||r", ["|r"; 4]);
        check("||||", ["||"; 4]);
        let red = format!("|{}", sgr("1;31", "X"));
        check("|||rX", ["|X", &red, &red, &red]);
    }

    #[test]
    fn xterm_cube_colours() {
        let bright_red = sgr("1;31", "X");
        let x196 = sgr("38;5;196", "X");
        check("|500X", ["X", &bright_red, &x196, &x196]);
        let dark_red = sgr("31", "X");
        let x88 = sgr("38;5;88", "X");
        check("|200X", ["X", &dark_red, &x88, &x88]);
        let bg = sgr("44", "X");
        let x21 = sgr("48;5;21", "X");
        check("|[005X", ["X", &bg, &x21, &x21]);
    }

    #[test]
    fn cube_down_sampling_in_ansi_mode() {
        let cases = [
            ("|500", "1;31"),
            ("|050", "1;32"),
            ("|005", "1;34"),
            ("|550", "1;33"),
            ("|505", "1;35"),
            ("|055", "1;36"),
            ("|555", "1;37"),
            ("|000", "30"),
            ("|100", "31"),
            ("|020", "32"),
            ("|530", "1;33"),
        ];
        for (code, params) in cases {
            assert_eq!(
                to_ansi(&format!("{code}X"), ANSI),
                sgr(params, "X"),
                "{code}"
            );
        }
    }

    #[test]
    fn greyscale_colours() {
        let black = sgr("30", "X");
        check(
            "|=aX",
            ["X", &black, &sgr("38;5;16", "X"), &sgr("38;5;16", "X")],
        );
        let white = sgr("1;37", "X");
        let x231 = sgr("38;5;231", "X");
        check("|=zX", ["X", &white, &x231, &x231]);
        // m is ramp entry 243, rgb(118,118,118): nearest ANSI is dark grey.
        let x243 = sgr("38;5;243", "X");
        check("|=mX", ["X", &sgr("1;30", "X"), &x243, &x243]);
        let bg = sgr("48;5;243", "X");
        check("|[=mX", ["X", &sgr("40", "X"), &bg, &bg]);
        check(
            "|=bX",
            [
                "X",
                &sgr("30", "X"),
                &sgr("38;5;232", "X"),
                &sgr("38;5;232", "X"),
            ],
        );
        let x255 = sgr("38;5;255", "X");
        check("|=yX", ["X", &sgr("1;37", "X"), &x255, &x255]);
    }

    #[test]
    fn truecolor_colours() {
        let want = [
            "X".to_owned(),
            sgr("1;31", "X"),
            sgr("38;5;196", "X"),
            sgr("38;2;255;0;0", "X"),
        ];
        let want = want.each_ref().map(String::as_str);
        check("|#ff0000X", want);
        check("|#FF0000X", want);
        check("|#f00X", want);
        let bg = [
            "X".to_owned(),
            sgr("44", "X"),
            sgr("48;5;21", "X"),
            sgr("48;2;0;0;255", "X"),
        ];
        check("|[#0000ffX", bg.each_ref().map(String::as_str));
        check("|[#00fX", bg.each_ref().map(String::as_str));
    }

    #[test]
    fn truecolor_down_sampling_to_xterm256() {
        let cases = [
            ("#ff0000", 196),
            ("#000000", 16),
            ("#ffffff", 231),
            ("#808080", 244),
            ("#ff8700", 208),
            ("#5f87af", 67),
            ("#0a0a0a", 232),
        ];
        for (hex, index) in cases {
            let got = to_ansi(&format!("|{hex}X"), XTERM);
            assert_eq!(got, sgr(&format!("38;5;{index}"), "X"), "{hex}");
        }
    }

    #[test]
    fn plain_foreground_keeps_hilite() {
        check(
            "|!RX",
            ["X", &sgr("31", "X"), &sgr("31", "X"), &sgr("31", "X")],
        );
        let bright_green = sgr("1;32", "X");
        check("|r|!GX", ["X", &bright_green, &bright_green, &bright_green]);
        check("|!rX", ["|!rX"; 4]);
    }

    #[test]
    fn xterm_colours_leave_hilite_alone_outside_ansi_mode() {
        assert_eq!(to_ansi("|r|500X", XTERM), sgr("1;38;5;196", "X"));
        assert_eq!(to_ansi("|r|#ff0000X", TRUE), sgr("1;38;2;255;0;0", "X"));
        // In ANSI mode the down-sampled colour decides brightness.
        assert_eq!(to_ansi("|r|200X", ANSI), sgr("31", "X"));
    }

    #[test]
    fn nesting_and_reset() {
        assert_eq!(
            to_ansi("|rA|[bB|uC|nD", ANSI),
            "\x1b[1;31mA\x1b[44mB\x1b[4mC\x1b[0mD\x1b[0m"
        );
        assert_eq!(
            to_ansi("|rA|[bB|uC|nD", XTERM),
            "\x1b[1;31mA\x1b[48;5;21mB\x1b[4mC\x1b[0mD\x1b[0m"
        );
        assert_eq!(to_ansi("|rA|RB", ANSI), "\x1b[1;31mA\x1b[22mB\x1b[0m");
        assert_eq!(to_ansi("|rA|gB", ANSI), "\x1b[1;31mA\x1b[32mB\x1b[0m");
        assert_eq!(to_ansi("|r|uA|UB", ANSI), "\x1b[1;31;4mA\x1b[24mB\x1b[0m");
        // Several codes in a row become one sequence.
        assert_eq!(
            to_ansi("|r|[B|u|i|s|*|^X", ANSI),
            sgr("1;31;44;3;4;5;7;9", "X")
        );
        // Only what is wanted when text arrives is written.
        assert_eq!(to_ansi("|r|g|bX", ANSI), sgr("1;34", "X"));
    }

    #[test]
    fn clearing_one_colour_keeps_the_other() {
        assert_eq!(
            to_ansi("|R|[BA|nB|[BC", ANSI),
            "\x1b[31;44mA\x1b[0mB\x1b[44mC\x1b[0m"
        );
        assert_eq!(to_ansi("|h|*A|HB", ANSI), "\x1b[1;7mA\x1b[22mB\x1b[0m");
    }

    #[test]
    fn ends_with_a_reset_only_when_colour_was_written() {
        assert_eq!(to_ansi("plain", ANSI), "plain");
        assert_eq!(to_ansi("", ANSI), "");
        assert_eq!(to_ansi("|rA|nB", ANSI), "\x1b[1;31mA\x1b[0mB\x1b[0m");
        for opts in [ANSI, XTERM, TRUE] {
            let out = to_ansi("x|500y|/|[#123456z", opts);
            assert!(out.ends_with(RESET), "{out:?}");
        }
    }

    #[test]
    fn multi_byte_text_is_kept_whole() {
        assert_eq!(
            to_ansi("|r日本|n語 🎉", ANSI),
            "\x1b[1;31m日本\x1b[0m語 🎉\x1b[0m"
        );
        assert_eq!(strip("|é|日|[🎉|!ö|=é|#é"), "|é|日|[🎉|!ö|=é|#é");
    }

    #[test]
    fn unknown_sequences_are_text() {
        for input in [
            "|q", "|Z", "|l", "|#12", "|#", "|[", "|[q", "|[#1", "|=", "|=A", "|[=", "|12", "|6",
            "|[6", "|[12", "|#abcd", "|#ggg", "|!", "|!Q", "|", "a|", "| ",
        ] {
            check(input, [input; 4]);
            assert_eq!(to_html(input).replace("&nbsp;", " "), input, "{input:?}");
        }
    }

    #[test]
    fn markup_boundaries() {
        // Exactly three cube digits; the fourth is text.
        assert_eq!(strip("|1234"), "4");
        assert_eq!(to_ansi("|1234", XTERM), sgr("38;5;67", "4"));
        // Six hex digits win over three; a seventh is text.
        assert_eq!(strip("|#abcdef0"), "0");
        assert_eq!(to_ansi("|#abcdef0", TRUE), sgr("38;2;171;205;239", "0"));
        // Three hex digits followed by a non-hex character.
        assert_eq!(to_ansi("|#abcg", TRUE), sgr("38;2;170;187;204", "g"));
        // Two pipes then a code.
        assert_eq!(strip("|||n"), "|");
    }

    #[test]
    fn strip_removes_all_markup() {
        assert_eq!(
            strip("|rred|n and |500x|[=a|#fff|u|*||pipe|/next|-t|>i|_s"),
            "red and x|pipe\nnext\tt    i s"
        );
        assert_eq!(strip("no markup at all"), "no markup at all");
        assert_eq!(strip("|h|H|i|I|s|S|^|!R|[R|[r|=z|[#000"), "");
    }

    #[test]
    fn none_mode_is_strip() {
        let input = "|rA|[bB|uC|/D||E|#123456F";
        assert_eq!(to_ansi(input, NONE), strip(input));
    }

    #[test]
    fn screenreader_drops_colour_and_decoration_lines() {
        let input = "|rTitle|n|/|r=====|n|/Body |gtext|n|/+---+---+|/ - - -|/a - b|/==|/x===";
        let want = "Title\nBody text\na - b\n==\nx===";
        for color in [
            ColorMode::None,
            ColorMode::Ansi,
            ColorMode::Xterm256,
            ColorMode::TrueColor,
        ] {
            let opts = RenderOptions {
                color,
                screenreader: true,
            };
            assert_eq!(to_ansi(input, opts), want);
        }
        let sr = RenderOptions {
            color: ColorMode::Ansi,
            screenreader: true,
        };
        assert_eq!(to_ansi("=====", sr), "");
        assert_eq!(to_ansi("a\n~~~\r\nb\n***", sr), "a\nb\n");
        assert_eq!(to_ansi("a\n___\t___\nb", sr), "a\nb");
    }

    #[test]
    fn decoration_line_rule() {
        for line in [
            "===",
            "---",
            "___",
            "***",
            "~~~",
            "+++",
            "+-+",
            "= = =",
            "  ----  \r",
        ] {
            assert!(is_decoration_line(line), "{line:?}");
        }
        for line in ["", "==", "   ", "a===", "===a", "-- --x", "#####", "..."] {
            assert!(!is_decoration_line(line), "{line:?}");
        }
    }

    #[test]
    fn html_palette_colours_are_classes() {
        let cases = [
            ("|rX", r#"<span class="color-009">X</span>"#),
            ("|RX", r#"<span class="color-001">X</span>"#),
            ("|xX", r#"<span class="color-008">X</span>"#),
            ("|XX", r#"<span class="color-000">X</span>"#),
            ("|wX", r#"<span class="color-015">X</span>"#),
            ("|WX", "X"),
            ("|hX", r#"<span class="color-015">X</span>"#),
            ("|[RX", r#"<span class="bgcolor-001">X</span>"#),
            ("|[XX", "X"),
            ("|[rX", r#"<span class="bgcolor-196">X</span>"#),
            ("|500X", r#"<span class="color-196">X</span>"#),
            ("|[005X", r#"<span class="bgcolor-021">X</span>"#),
            ("|=aX", r#"<span class="color-016">X</span>"#),
            ("|[=mX", r#"<span class="bgcolor-243">X</span>"#),
            ("|r|[bX", r#"<span class="color-009 bgcolor-021">X</span>"#),
            ("|h|500X", r#"<span class="color-196">X</span>"#),
            ("|!GX", r#"<span class="color-002">X</span>"#),
        ];
        for (input, want) in cases {
            assert_eq!(to_html(input), want, "{input:?}");
        }
    }

    #[test]
    fn html_truecolor_is_inline_style() {
        assert_eq!(
            to_html("|#FF8800X"),
            r#"<span style="color:#ff8800">X</span>"#
        );
        assert_eq!(
            to_html("|[#f80X"),
            r#"<span style="background-color:#ff8800">X</span>"#
        );
        assert_eq!(
            to_html("|#010203|[#040506|uX"),
            r#"<span class="underline" style="color:#010203;background-color:#040506">X</span>"#
        );
    }

    #[test]
    fn html_attributes_and_inverse() {
        let cases = [
            ("|uX", r#"<span class="underline">X</span>"#),
            ("|iX", r#"<span class="italic">X</span>"#),
            ("|sX", r#"<span class="strikethrough">X</span>"#),
            ("|^X", r#"<span class="blink">X</span>"#),
            ("|*X", r#"<span class="color-000 bgcolor-007">X</span>"#),
            (
                "|r|[B|*X",
                r#"<span class="color-004 bgcolor-009">X</span>"#,
            ),
            (
                "|#ff0000|*X",
                r#"<span class="color-000" style="background-color:#ff0000">X</span>"#,
            ),
            (
                "|u|i|s|^X",
                r#"<span class="underline italic strikethrough blink">X</span>"#,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(to_html(input), want, "{input:?}");
        }
    }

    #[test]
    fn html_spans_are_closed_and_never_nested() {
        assert_eq!(
            to_html("|rred|n plain"),
            r#"<span class="color-009">red</span> plain"#
        );
        assert_eq!(
            to_html("|rA|gB|[bC"),
            concat!(
                r#"<span class="color-009">A</span>"#,
                r#"<span class="color-010">B</span>"#,
                r#"<span class="color-010 bgcolor-021">C</span>"#
            )
        );
        // A change that renders the same keeps the span open.
        assert_eq!(to_html("|rA|h|rB"), r#"<span class="color-009">AB</span>"#);
        // Codes with no text after them open nothing.
        assert_eq!(to_html("A|r|u"), "A");
        for input in ["|rA", "|r|[b|u|iA|gB|UC", "|#123A|[#456B|*C|nD|rE"] {
            let html = to_html(input);
            assert_eq!(
                html.matches("<span").count(),
                html.matches("</span>").count(),
                "{html}"
            );
            assert!(html.ends_with("</span>"), "{html}");
            assert!(!html.contains("<span><span"), "{html}");
        }
    }

    #[test]
    fn html_escapes_text() {
        assert_eq!(
            to_html(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#x27;"
        );
        assert_eq!(
            to_html("|r<b>|n"),
            r#"<span class="color-009">&lt;b&gt;</span>"#
        );
        assert_eq!(to_html("a\x1b[31mb\x07"), "a[31mb");
    }

    #[test]
    fn html_line_breaks_tabs_and_spaces() {
        assert_eq!(to_html("a|/b\nc\r\nd\re"), "a<br>b<br>c<br>d<br>e");
        assert_eq!(
            to_html("a|-b\tc"),
            concat!("a&nbsp;&nbsp;&nbsp;&nbsp;b", "&nbsp;&nbsp;&nbsp;&nbsp;c")
        );
        assert_eq!(to_html("a b"), "a b");
        assert_eq!(to_html("a  b"), "a &nbsp;b");
        assert_eq!(to_html("a   b"), "a &nbsp;&nbsp;b");
        assert_eq!(to_html(" a"), "&nbsp;a");
        assert_eq!(to_html("a|/ b"), "a<br>&nbsp;b");
        assert_eq!(to_html("|>x"), "&nbsp;&nbsp;&nbsp;&nbsp;x");
        assert_eq!(to_html("a|_|_b"), "a &nbsp;b");
        assert_eq!(
            to_html("a |r b"),
            r#"a <span class="color-009">&nbsp;b</span>"#
        );
        assert_eq!(to_html("x||y"), "x|y");
    }

    #[test]
    fn options_follow_the_client_flags() {
        let mut flags = ProtocolFlags {
            ansi: true,
            xterm256: false,
            truecolor: false,
            nocolor: false,
            screenreader: false,
            ..ProtocolFlags::default()
        };
        assert_eq!(RenderOptions::for_client(&flags).color, ColorMode::Ansi);
        flags.xterm256 = true;
        assert_eq!(RenderOptions::for_client(&flags).color, ColorMode::Xterm256);
        flags.truecolor = true;
        assert_eq!(
            RenderOptions::for_client(&flags).color,
            ColorMode::TrueColor
        );
        flags.nocolor = true;
        assert_eq!(RenderOptions::for_client(&flags).color, ColorMode::None);
        flags.nocolor = false;
        flags.screenreader = true;
        assert!(RenderOptions::for_client(&flags).screenreader);
        let bare = ProtocolFlags {
            ansi: false,
            xterm256: false,
            truecolor: false,
            ..ProtocolFlags::default()
        };
        assert_eq!(RenderOptions::for_client(&bare).color, ColorMode::None);
    }

    /// Runs every renderer in every mode; panics are the failure.
    fn render_everything(input: &str) {
        for opts in ALL {
            let out = to_ansi(input, opts);
            if out.contains('\x1b') && !input.contains('\x1b') {
                assert!(out.ends_with(RESET), "{input:?} -> {out:?}");
            }
            let sr = RenderOptions {
                screenreader: true,
                ..opts
            };
            assert!(!to_ansi(input, sr).contains('\x1b') || input.contains('\x1b'));
        }
        let html = to_html(input);
        assert_eq!(
            html.matches("<span").count(),
            html.matches("</span>").count()
        );
        let plain = strip(input);
        assert!(plain.chars().count() <= input.chars().count() * 4);
    }

    #[test]
    fn every_prefix_of_tricky_input_renders() {
        let tricky = "|[#12|#12|=|[=|[|!|!Ré|é||||#abcdeg|123|12|[1|5|#|#ff|#fff|[#FfF\
                      |日本|🎉|[🎉|=é|#1é|[#12345é|!é|r|[r|=z|u|*|^|/|-|>|_|n|";
        for (i, _) in tricky.char_indices().chain([(tricky.len(), ' ')]) {
            let prefix = &tricky[..i];
            render_everything(prefix);
            let suffix = &tricky[i..];
            render_everything(suffix);
        }
    }

    #[test]
    fn arbitrary_garbage_renders() {
        const ALPHABET: [char; 24] = [
            '|', '|', '|', '[', '#', '=', '!', '0', '5', '9', 'a', 'f', 'z', 'R', 'n', '/', ' ',
            '\n', '\r', '\t', 'é', '日', '🎉', '\x1b',
        ];
        // A fixed linear congruential generator keeps the run reproducible.
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..2000 {
            let mut input = String::new();
            for _ in 0..(state % 24) {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let pick = usize::try_from(state >> 59).unwrap_or(0) % ALPHABET.len();
                input.push(ALPHABET[pick]);
            }
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            render_everything(&input);
        }
    }

    #[test]
    fn text_without_markup_is_unchanged() {
        let input = "Hello, wörld! 日本語 <tag> & \"q\" ~~~";
        for opts in ALL {
            assert_eq!(to_ansi(input, opts), input);
        }
        assert_eq!(strip(input), input);
    }
}
