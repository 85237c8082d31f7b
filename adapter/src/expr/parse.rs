//! Reading an expression: a lexer and a recursive-descent parser over
//! `||`, `&&`, comparisons, `!`/`*`/`-` and postfix `.field`/`[index]`.

use anyhow::{anyhow, bail, Result};

use super::{Expr, Op, Scalar};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Int(i128),
    Float(f64),
    Str(String),
    Sym(&'static str),
}

fn lex(s: &str) -> Result<Vec<Tok>> {
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    const SYMS: [&str; 17] = [
        "&&", "||", "==", "!=", "<=", ">=", "<", ">", "!", "(", ")", "[", "]", ".", "*", "%", "-",
    ];
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '.' || b[i] == '_') {
                i += 1;
            }
            let text: String = b[start..i].iter().filter(|&&c| c != '_').collect();
            if let Some(hex) = text.strip_prefix("0x") {
                out.push(Tok::Int(
                    i128::from_str_radix(hex, 16).map_err(|_| anyhow!("bad number {text}"))?,
                ));
            } else if text.contains('.') || text.contains('e') {
                out.push(Tok::Float(
                    text.parse().map_err(|_| anyhow!("bad number {text}"))?,
                ));
            } else {
                out.push(Tok::Int(
                    text.parse().map_err(|_| anyhow!("bad number {text}"))?,
                ));
            }
        } else if c.is_alphabetic() || c == '_' || c == '~' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_' || b[i] == '~') {
                i += 1;
            }
            out.push(Tok::Ident(b[start..i].iter().collect()));
        } else if c == '"' || c == '`' {
            let quote = c;
            i += 1;
            let mut text = String::new();
            loop {
                let Some(&c) = b.get(i) else {
                    bail!("unterminated string");
                };
                i += 1;
                if c == quote {
                    break;
                }
                if c == '\\' && quote == '"' {
                    let Some(&e) = b.get(i) else {
                        bail!("unterminated string");
                    };
                    i += 1;
                    text.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                } else {
                    text.push(c);
                }
            }
            out.push(Tok::Str(text));
        } else {
            let rest: String = b[i..b.len().min(i + 2)].iter().collect();
            let Some(sym) = SYMS.iter().find(|s| rest.starts_with(**s)) else {
                bail!("unexpected character {c:?}");
            };
            out.push(Tok::Sym(sym));
            i += sym.len();
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn eat(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(s)) if *s == sym) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn or(&mut self) -> Result<Expr> {
        let mut e = self.and()?;
        while self.eat("||") {
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }
    fn and(&mut self) -> Result<Expr> {
        let mut e = self.cmp()?;
        while self.eat("&&") {
            e = Expr::And(Box::new(e), Box::new(self.cmp()?));
        }
        Ok(e)
    }
    fn cmp(&mut self) -> Result<Expr> {
        let left = self.unary()?;
        let op = match self.peek() {
            Some(Tok::Sym("==")) => Op::Eq,
            Some(Tok::Sym("!=")) => Op::Ne,
            Some(Tok::Sym("<")) => Op::Lt,
            Some(Tok::Sym("<=")) => Op::Le,
            Some(Tok::Sym(">")) => Op::Gt,
            Some(Tok::Sym(">=")) => Op::Ge,
            _ => return Ok(left),
        };
        self.pos += 1;
        Ok(Expr::Cmp(Box::new(left), op, Box::new(self.unary()?)))
    }
    fn unary(&mut self) -> Result<Expr> {
        if self.eat("!") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.eat("*") {
            return Ok(Expr::Deref(Box::new(self.unary()?)));
        }
        if self.eat("-") {
            // Negative literals; arithmetic is not part of the language.
            return match self.unary()? {
                Expr::Lit(Scalar::Int(n)) => Ok(Expr::Lit(Scalar::Int(-n))),
                Expr::Lit(Scalar::Float(f)) => Ok(Expr::Lit(Scalar::Float(-f))),
                _ => bail!("'-' applies only to number literals"),
            };
        }
        self.postfix()
    }
    fn postfix(&mut self) -> Result<Expr> {
        let mut e = self.primary()?;
        loop {
            if self.eat(".") {
                match self.peek().cloned() {
                    Some(Tok::Ident(name)) => {
                        self.pos += 1;
                        e = Expr::Field(Box::new(e), name);
                    }
                    _ => bail!("expected a field name after '.'"),
                }
            } else if self.eat("[") {
                let i = self.or()?;
                if !self.eat("]") {
                    bail!("expected ']'");
                }
                e = Expr::Index(Box::new(e), Box::new(i));
            } else {
                return Ok(e);
            }
        }
    }
    fn primary(&mut self) -> Result<Expr> {
        let Some(tok) = self.peek().cloned() else {
            bail!("expression ends too early");
        };
        self.pos += 1;
        Ok(match tok {
            Tok::Int(n) => Expr::Lit(Scalar::Int(n)),
            Tok::Float(f) => Expr::Lit(Scalar::Float(f)),
            Tok::Str(s) => Expr::Lit(Scalar::Str(s)),
            Tok::Ident(id) if id == "true" => Expr::Lit(Scalar::Bool(true)),
            Tok::Ident(id) if id == "false" => Expr::Lit(Scalar::Bool(false)),
            Tok::Ident(id) if id == "nil" => Expr::Lit(Scalar::Nil),
            Tok::Ident(id) if id == "len" && self.eat("(") => {
                let inner = self.or()?;
                if !self.eat(")") {
                    bail!("expected ')' after len(...");
                }
                Expr::Len(Box::new(inner))
            }
            Tok::Ident(id) => Expr::Var(id),
            Tok::Sym("(") => {
                let e = self.or()?;
                if !self.eat(")") {
                    bail!("expected ')'");
                }
                e
            }
            Tok::Sym(s) => bail!("unexpected '{s}'"),
        })
    }
}

/// Parses an expression (a condition, or the inside of `{...}`).
pub fn parse(s: &str) -> Result<Expr> {
    let mut p = Parser {
        toks: lex(s)?,
        pos: 0,
    };
    let e = p.or()?;
    if p.pos != p.toks.len() {
        bail!("unexpected text after the expression in {s:?}");
    }
    Ok(e)
}
