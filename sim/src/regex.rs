//! A small regular-expression matcher for `~regexp` path entries (Go's `MatchString`:
//! unanchored search). Supports literals, `.`, classes (`[a-z]`, `[^…]`, `\d \w \s` and
//! their negations), anchors `^ $`, groups `(…)`/`(?:…)`, alternation `|` and the
//! quantifiers `* + ? {n} {n,} {n,m}` (lazy `?` suffixes are accepted; they do not change
//! whether a string matches). Compiled to a Thompson NFA and run as a Pike VM, so the
//! time is linear in the input.

#[derive(Clone, Debug)]
enum Pred {
    Lit(char),
    Any,
    Class(bool, Vec<(char, char)>),
}

impl Pred {
    fn test(&self, c: char) -> bool {
        match self {
            Pred::Lit(l) => *l == c,
            Pred::Any => c != '\n',
            Pred::Class(neg, ranges) => ranges.iter().any(|(a, b)| *a <= c && c <= *b) != *neg,
        }
    }
}

#[derive(Clone, Debug)]
enum Node {
    Char(Pred),
    Start,
    End,
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat(Box<Node>, u32, Option<u32>),
}

#[derive(Clone, Debug)]
enum Inst {
    Char(Pred),
    Split(usize, usize),
    Jmp(usize),
    Start,
    End,
    Match,
}

#[derive(Clone, Debug)]
pub struct Regex {
    prog: Vec<Inst>,
}

/// Repetition counts above this are rejected (Go's limit is 1000).
const MAX_REPEAT: u32 = 1000;

struct Parser<'a> {
    s: &'a [char],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn alt(&mut self) -> Result<Node, String> {
        let mut alts = vec![self.seq()?];
        while self.peek() == Some('|') {
            self.i += 1;
            alts.push(self.seq()?);
        }
        Ok(if alts.len() == 1 {
            alts.pop().unwrap()
        } else {
            Node::Alt(alts)
        })
    }

    fn seq(&mut self) -> Result<Node, String> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            items.push(self.quantified(atom)?);
        }
        Ok(Node::Concat(items))
    }

    fn quantified(&mut self, atom: Node) -> Result<Node, String> {
        let (min, max) = match self.peek() {
            Some('*') => {
                self.i += 1;
                (0, None)
            }
            Some('+') => {
                self.i += 1;
                (1, None)
            }
            Some('?') => {
                self.i += 1;
                (0, Some(1))
            }
            // `counts` moves past the closing brace; a brace that is no count is a literal.
            Some('{') => match self.counts() {
                Some(q) => q,
                None => return Ok(atom),
            },
            _ => return Ok(atom),
        };
        if matches!(atom, Node::Start | Node::End) {
            return Err("missing argument to repetition operator".into());
        }
        if self.peek() == Some('?') {
            self.i += 1;
        }
        if matches!(self.peek(), Some('*' | '+' | '?')) {
            return Err("invalid nested repetition operator".into());
        }
        Ok(Node::Repeat(Box::new(atom), min, max))
    }

    /// `{n}`, `{n,}`, `{n,m}`; leaves `i` after the `}`. None (and `i` unchanged) if the
    /// brace is a literal.
    fn counts(&mut self) -> Option<(u32, Option<u32>)> {
        let start = self.i;
        let rest: String = self.s[self.i + 1..].iter().collect();
        let end = rest.find('}')?;
        let body = &rest[..end];
        let parse = |t: &str| t.parse::<u32>().ok().filter(|n| *n <= MAX_REPEAT);
        let r = match body.split_once(',') {
            None => parse(body).map(|n| (n, Some(n))),
            Some((a, "")) => parse(a).map(|n| (n, None)),
            Some((a, b)) => match (parse(a), parse(b)) {
                (Some(a), Some(b)) if a <= b => Some((a, Some(b))),
                _ => None,
            },
        };
        match r {
            Some(q) => {
                self.i = start + 1 + end + 1;
                Some(q)
            }
            None => None,
        }
    }

    fn atom(&mut self) -> Result<Node, String> {
        let c = self.peek().ok_or("unexpected end")?;
        self.i += 1;
        Ok(match c {
            '.' => Node::Char(Pred::Any),
            '^' => Node::Start,
            '$' => Node::End,
            '(' => {
                if self.s[self.i..].starts_with(&['?', ':']) {
                    self.i += 2;
                }
                let inner = self.alt()?;
                if self.peek() != Some(')') {
                    return Err("missing closing )".into());
                }
                self.i += 1;
                inner
            }
            '[' => self.class()?,
            '\\' => Node::Char(self.escape()?),
            '*' | '+' | '?' => return Err("missing argument to repetition operator".into()),
            c => Node::Char(Pred::Lit(c)),
        })
    }

    fn escape(&mut self) -> Result<Pred, String> {
        let c = self
            .peek()
            .ok_or("trailing backslash at end of expression")?;
        self.i += 1;
        let digit = vec![('0', '9')];
        let word = vec![('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')];
        let space = vec![('\t', '\n'), ('\x0c', '\r'), (' ', ' ')];
        Ok(match c {
            'd' => Pred::Class(false, digit),
            'D' => Pred::Class(true, digit),
            'w' => Pred::Class(false, word),
            'W' => Pred::Class(true, word),
            's' => Pred::Class(false, space),
            'S' => Pred::Class(true, space),
            'n' => Pred::Lit('\n'),
            't' => Pred::Lit('\t'),
            c if c.is_ascii_alphanumeric() => {
                return Err(format!("invalid escape sequence: \\{c}"))
            }
            c => Pred::Lit(c),
        })
    }

    fn class(&mut self) -> Result<Node, String> {
        let neg = self.peek() == Some('^');
        if neg {
            self.i += 1;
        }
        let mut ranges = Vec::new();
        let mut first = true;
        loop {
            let c = self.peek().ok_or("missing closing ]")?;
            self.i += 1;
            if c == ']' && !first {
                break;
            }
            first = false;
            let lo = if c == '\\' {
                match self.escape()? {
                    Pred::Lit(l) => l,
                    Pred::Class(false, r) => {
                        ranges.extend(r);
                        continue;
                    }
                    _ => return Err("negated class escape inside a class".into()),
                }
            } else {
                c
            };
            if self.peek() == Some('-') && self.s.get(self.i + 1).is_some_and(|n| *n != ']') {
                self.i += 1;
                let mut hi = self.peek().ok_or("missing closing ]")?;
                self.i += 1;
                if hi == '\\' {
                    match self.escape()? {
                        Pred::Lit(l) => hi = l,
                        _ => return Err("invalid character class range".into()),
                    }
                }
                if hi < lo {
                    return Err("invalid character class range".into());
                }
                ranges.push((lo, hi));
            } else {
                ranges.push((lo, lo));
            }
        }
        Ok(Node::Char(Pred::Class(neg, ranges)))
    }
}

fn compile(n: &Node, prog: &mut Vec<Inst>) {
    match n {
        Node::Char(p) => prog.push(Inst::Char(p.clone())),
        Node::Start => prog.push(Inst::Start),
        Node::End => prog.push(Inst::End),
        Node::Concat(items) => items.iter().for_each(|i| compile(i, prog)),
        Node::Alt(alts) => {
            // split L1, next; L1: a; jmp end; next: split L2, ...
            let mut jumps = Vec::new();
            for (k, a) in alts.iter().enumerate() {
                if k + 1 < alts.len() {
                    let split = prog.len();
                    prog.push(Inst::Split(split + 1, 0));
                    compile(a, prog);
                    jumps.push(prog.len());
                    prog.push(Inst::Jmp(0));
                    let next = prog.len();
                    prog[split] = Inst::Split(split + 1, next);
                } else {
                    compile(a, prog);
                }
            }
            let end = prog.len();
            for j in jumps {
                prog[j] = Inst::Jmp(end);
            }
        }
        Node::Repeat(e, min, max) => {
            for _ in 0..*min {
                compile(e, prog);
            }
            match max {
                None => {
                    // L1: split L2, L3; L2: e; jmp L1; L3:
                    let l1 = prog.len();
                    prog.push(Inst::Split(l1 + 1, 0));
                    compile(e, prog);
                    prog.push(Inst::Jmp(l1));
                    let l3 = prog.len();
                    prog[l1] = Inst::Split(l1 + 1, l3);
                }
                Some(max) => {
                    let mut splits = Vec::new();
                    for _ in *min..*max {
                        splits.push(prog.len());
                        prog.push(Inst::Split(0, 0));
                        compile(e, prog);
                    }
                    let end = prog.len();
                    for s in splits {
                        prog[s] = Inst::Split(s + 1, end);
                    }
                }
            }
        }
    }
}

impl Regex {
    pub fn new(pattern: &str) -> Result<Regex, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut p = Parser { s: &chars, i: 0 };
        let ast = p.alt()?;
        if p.i != chars.len() {
            return Err("unexpected )".into());
        }
        let mut prog = Vec::new();
        compile(&ast, &mut prog);
        prog.push(Inst::Match);
        if prog.len() > 100_000 {
            return Err("expression too large".into());
        }
        Ok(Regex { prog })
    }

    /// True if the pattern matches anywhere in `s`.
    pub fn is_match(&self, s: &str) -> bool {
        let chars: Vec<char> = s.chars().collect();
        let n = chars.len();
        let mut clist: Vec<usize> = Vec::new();
        let mut nlist: Vec<usize> = Vec::new();
        let mut seen = vec![usize::MAX; self.prog.len()];
        for i in 0..=n {
            // Unanchored: a new thread may start at every position.
            if self.add(&mut clist, &mut seen, 0, i, n) {
                return true;
            }
            let c = chars.get(i).copied();
            for &pc in &clist {
                if let (Inst::Char(p), Some(c)) = (&self.prog[pc], c) {
                    if p.test(c) && self.add(&mut nlist, &mut seen, pc + 1, i + 1, n) {
                        return true;
                    }
                }
            }
            std::mem::swap(&mut clist, &mut nlist);
            nlist.clear();
        }
        false
    }

    /// Adds a thread (following empty transitions) for position `pos`; true on Match.
    fn add(
        &self,
        list: &mut Vec<usize>,
        seen: &mut [usize],
        pc: usize,
        pos: usize,
        n: usize,
    ) -> bool {
        if seen[pc] == pos {
            return false;
        }
        seen[pc] = pos;
        match &self.prog[pc] {
            Inst::Match => true,
            Inst::Jmp(t) => self.add(list, seen, *t, pos, n),
            Inst::Split(a, b) => {
                self.add(list, seen, *a, pos, n) || self.add(list, seen, *b, pos, n)
            }
            Inst::Start => pos == 0 && self.add(list, seen, pc + 1, pos, n),
            Inst::End => pos == n && self.add(list, seen, pc + 1, pos, n),
            Inst::Char(_) => {
                list.push(pc);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Regex;

    fn m(p: &str, s: &str) -> bool {
        Regex::new(p).unwrap().is_match(s)
    }

    #[test]
    fn matches_like_go() {
        assert!(m("^cam.*$", "cam1"));
        assert!(!m("^cam.*$", "xcam1"));
        assert!(m("cam", "xcam1"), "unanchored search");
        assert!(m("^cam_[0-9]+$", "cam_12"));
        assert!(!m("^cam_[0-9]+$", "cam_"));
        assert!(!m("^cam_\\d{2}$", "cam_123"));
        assert!(m("^cam_\\d{2,3}$", "cam_123"));
        assert!(m("^(front|back)/cam[ab]?$", "back/cam"));
        assert!(m("^(?:front|back)/cam[ab]?$", "front/camb"));
        assert!(!m("^(front|back)/cam[ab]?$", "side/cam"));
        assert!(m("^[^/]+$", "cam1"));
        assert!(!m("^[^/]+$", "g/cam1"));
        assert!(m("^a\\.b$", "a.b"));
        assert!(!m("^a\\.b$", "axb"));
        assert!(m("^(a|ab)(c|bcd)(d*)$", "abcd"));
        assert!(m("^x*$", ""));
        assert!(m("^[a-c-]+$", "a-c"));
        assert!(m("^\\w+-\\s?\\S$", "ab_1- x"));
        assert!(m("^a{0}b$", "b"));
        assert!(m("^a{2,}$", "aaaa"));
        assert!(m("^a+?$", "aa"));
        assert!(!m("^$", "a"));
    }

    #[test]
    fn rejects_bad_patterns() {
        for p in ["(", "a)", "[a", "*a", "a**", "\\q", "[z-a]", "\\"] {
            assert!(Regex::new(p).is_err(), "{p}");
        }
    }

    #[test]
    fn linear_time() {
        let r = Regex::new("^(a+)+$").unwrap();
        let s = "a".repeat(5000) + "b";
        assert!(!r.is_match(&s));
    }
}
