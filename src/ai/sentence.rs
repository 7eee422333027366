//! Splits a streamed reply into sentences, so that text-to-speech can start on the first
//! sentence while the language model is still writing the rest.
//!
//! A sentence ends at `.`, `!`, `?` or a newline followed by whitespace. A period does not end a
//! sentence after a known abbreviation ("Dr.", "e.g.") or a single capital letter ("J."), nor
//! between digits ("3.5", "9.30"), which is why the splitter waits for the character after the
//! mark before it decides.

/// Abbreviations, lowercase without their period, after which a period does not end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "dr", "mr", "mrs", "ms", "prof", "st", "jr", "sr", "vs", "etc", "e.g", "i.e", "no", "approx",
    "mt", "ave", "inc", "ltd", "co", "dept", "min", "max", "tel", "fig", "ca", "jan", "feb", "mar",
    "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
];

/// Sentence splitter fed with language-model tokens.
#[derive(Debug, Default)]
pub struct SentenceSplitter {
    pending: String,
}

impl SentenceSplitter {
    /// Creates an empty splitter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a token and returns the sentences it completed, trimmed and in order.
    pub fn push(&mut self, token: &str) -> Vec<String> {
        self.pending.push_str(token);
        let mut sentences = Vec::new();
        while let Some(end) = self.find_boundary() {
            let rest = self.pending.split_off(end);
            let sentence = std::mem::replace(&mut self.pending, rest);
            let sentence = sentence.trim();
            if !sentence.is_empty() {
                sentences.push(sentence.to_owned());
            }
        }
        sentences
    }

    /// Returns the text left after the last boundary, once the reply is complete.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.pending);
        let rest = rest.trim();
        (!rest.is_empty()).then(|| rest.to_owned())
    }

    /// Byte offset just past the first sentence end whose following character is known.
    fn find_boundary(&self) -> Option<usize> {
        let text = self.pending.as_str();
        let mut chars = text.char_indices().peekable();
        while let Some((index, ch)) = chars.next() {
            let is_mark = matches!(ch, '.' | '!' | '?' | '\n');
            if !is_mark {
                continue;
            }
            if ch == '\n' {
                return Some(index + 1);
            }
            // Runs of marks ("?!", "...") and closing quotes belong to the sentence.
            let mut end = index + ch.len_utf8();
            while let Some(&(next_index, next)) = chars.peek() {
                if matches!(next, '.' | '!' | '?' | '"' | '\'' | ')' | '”' | '’') {
                    end = next_index + next.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            let next = chars.peek().map(|&(_, next)| next)?;
            if !next.is_whitespace() {
                continue;
            }
            if ch == '.' && !ends_sentence(&text[..index]) {
                continue;
            }
            return Some(end);
        }
        None
    }
}

/// Decides whether a period after `before` ends a sentence.
fn ends_sentence(before: &str) -> bool {
    let word = before
        .rsplit(|c: char| c.is_whitespace() || c == '(' || c == '"')
        .next()
        .unwrap_or("");
    let lower = word.to_lowercase();
    if ABBREVIATIONS.contains(&lower.as_str()) {
        return false;
    }
    // A single capital letter is an initial ("J. Smith").
    let mut letters = word.chars();
    if let (Some(first), None) = (letters.next(), letters.next())
        && first.is_uppercase()
    {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_tokens(tokens: &[&str]) -> Vec<String> {
        let mut splitter = SentenceSplitter::new();
        let mut sentences = Vec::new();
        for token in tokens {
            sentences.extend(splitter.push(token));
        }
        sentences.extend(splitter.finish());
        sentences
    }

    #[test]
    fn splits_on_marks_and_newline() {
        let sentences = split_tokens(&["Hello there. How", " are you? Great!", "\nBye"]);
        assert_eq!(sentences, ["Hello there.", "How are you?", "Great!", "Bye"]);
    }

    #[test]
    fn keeps_abbreviations_decimals_and_times() {
        let sentences = split_tokens(&[
            "Dr. Smith sees you at 9.30 tomorrow. ",
            "The fee is 3.5 dollars, e.g. cash. ",
            "Ask J. Doe.",
        ]);
        assert_eq!(
            sentences,
            [
                "Dr. Smith sees you at 9.30 tomorrow.",
                "The fee is 3.5 dollars, e.g. cash.",
                "Ask J. Doe."
            ]
        );
    }

    #[test]
    fn waits_for_next_character() {
        let mut splitter = SentenceSplitter::new();
        assert!(splitter.push("It costs 3.").is_empty());
        assert!(splitter.push("5").is_empty());
        assert_eq!(splitter.push(" euros. Next"), ["It costs 3.5 euros."]);
        assert_eq!(splitter.finish().as_deref(), Some("Next"));
    }

    #[test]
    fn keeps_closing_quotes_and_runs() {
        let sentences = split_tokens(&["He said \"stop!\" Then... nothing?! Ok"]);
        assert_eq!(
            sentences,
            ["He said \"stop!\"", "Then...", "nothing?!", "Ok"]
        );
    }

    #[test]
    fn empty_input_yields_nothing() {
        assert!(split_tokens(&["", "  ", "\n"]).is_empty());
    }
}
