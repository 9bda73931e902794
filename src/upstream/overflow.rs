//! Backends' answers to a request longer than the model's context: recognised by their codes and wordings, and read
//! for the numbers they give (the tokens the backend counted, the window it enforces), so that a turn can be fitted
//! again to the backend's own budget and a client told by how much it was over.

/// A backend's refusal of a request as longer than the model's context, with its numbers where it gave them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overflow {
    /// The tokens of the prompt, as the backend counted them.
    pub prompt_tokens: Option<u64>,
    /// The context window the backend enforces, in its tokens.
    pub window: Option<u64>,
}

/// The codes backends give a request longer than the model's context: OpenAI's, and llama.cpp server's error type.
const CODES: [&str; 2] = ["context_length_exceeded", "exceed_context_size_error"];

/// Lowercased wordings of backends' context-overflow messages, any of which a message may contain.
const WORDINGS: [&str; 12] = [
    // OpenAI, vLLM: "This model's maximum context length is 4096 tokens. However, you requested …".
    "maximum context length",
    // vLLM: "The decoder prompt (length 5000) is longer than the maximum model length of 4096. …".
    "longer than the maximum model length",
    // vLLM: "Input prompt (5000 tokens) is too long and exceeds limit of 4096".
    "is too long and exceeds limit",
    // llama.cpp server: "request (950 tokens) exceeds the available context size (512 tokens), try increasing it".
    "exceeds the available context size",
    // llama.cpp server, with context shift: "input (950 tokens) is larger than the max context size (512 tokens)".
    "is larger than the max context size",
    // Ollama: "input length exceeds maximum context length".
    "exceeds maximum context length",
    // Ollama: "prompt too long; exceeded max context length by 12 tokens".
    "exceeded max context length",
    // Ollama: "the input length exceeds the context length".
    "exceeds the context length",
    // LM Studio: "Trying to keep the first 5000 tokens when context the overflows. However, the model is loaded with
    // context length of only 4096 tokens, which is not enough. …".
    "context the overflows",
    "context length of only",
    // LM Studio: "Context length exceeded".
    "context length exceeded",
    // Anthropic: "prompt is too long: 210000 tokens > 200000 maximum".
    "prompt is too long",
];

/// Where backends' messages give the prompt's tokens: the number right after each of these (lowercased) phrases,
/// first found wins.
const PROMPT_TOKENS_AFTER: [&str; 8] = [
    // vLLM, OpenAI: "However, you requested 5000 tokens (4900 in the messages, 100 in the completion)": the part in
    // the messages comes first, the whole request (which includes the reply's reserve) only without it.
    "tokens (",
    // OpenAI: "However, your messages resulted in 5000 tokens".
    "resulted in ",
    // vLLM: "However, your request has 5000 input tokens".
    "your request has ",
    // vLLM: "The decoder prompt (length 5000)".
    "prompt (length ",
    // vLLM: "Input prompt (5000 tokens)".
    "prompt (",
    // llama.cpp: "request (950 tokens)" and "input (950 tokens)".
    "request (",
    "input (",
    // Anthropic: "prompt is too long: 210000 tokens".
    "too long: ",
];

/// Where backends' messages give the window: the number right after each of these (lowercased) phrases.
const WINDOW_AFTER: [&str; 6] = [
    // OpenAI, vLLM: "maximum context length is 4096 tokens".
    "maximum context length is ",
    // vLLM: "the maximum model length of 4096", "exceeds limit of 4096".
    "maximum model length of ",
    "exceeds limit of ",
    // llama.cpp: "the available context size (512 tokens)", "the max context size (512 tokens)".
    "context size (",
    // LM Studio: "loaded with context length of only 4096 tokens".
    "context length of only ",
    // Anthropic: "210000 tokens > 200000 maximum".
    "tokens > ",
];

impl Overflow {
    /// The overflow a backend's error describes, if it describes one: by its code (or llama.cpp's error type), or
    /// by the wording of its message; its numbers from the fields llama.cpp sends, else from the message.
    pub fn of_error(code: Option<&str>, message: &str, fields: Overflow) -> Option<Self> {
        let lowered = message.to_lowercase();
        let named = code.is_some_and(|code| CODES.contains(&code));
        if !named && !WORDINGS.iter().any(|wording| lowered.contains(wording)) {
            return None;
        }
        Some(Self {
            prompt_tokens: fields.prompt_tokens.or_else(|| number_after(&lowered, &PROMPT_TOKENS_AFTER)),
            window: fields.window.or_else(|| number_after(&lowered, &WINDOW_AFTER)),
        })
    }

    /// The overflow a message alone describes (a stream's error), if it describes one.
    pub fn of_message(message: &str) -> Option<Self> {
        Self::of_error(None, message, Self::default())
    }
}

/// The first positive number that directly follows one of `phrases` in `text` (digits, commas between them allowed).
fn number_after(text: &str, phrases: &[&str]) -> Option<u64> {
    phrases.iter().find_map(|phrase| {
        text.match_indices(phrase).find_map(|(at, _)| {
            let rest = &text[at + phrase.len()..];
            let digits: String =
                rest.chars().take_while(|c| c.is_ascii_digit() || *c == ',').filter(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok().filter(|number| *number > 0)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Context-overflow messages as backends send them.
    const OVERFLOW_MESSAGES: [&str; 11] = [
        // OpenAI, vLLM.
        "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4900 in the \
         messages, 100 in the completion). Please reduce the length of the messages or completion.",
        // vLLM.
        "The decoder prompt (length 5000) is longer than the maximum model length of 4096. Make sure that \
         `max_model_len` is no smaller than the number of text tokens.",
        "Input prompt (5000 tokens) is too long and exceeds limit of 4096",
        // llama.cpp server, now and before.
        "the request exceeds the available context size, try increasing it",
        "the request exceeds the available context size. try increasing the context size or enable context shift",
        // Ollama.
        "input length exceeds maximum context length",
        "prompt too long; exceeded max context length by 12 tokens",
        "the input length exceeds the context length",
        // LM Studio.
        "Trying to keep the first 5000 tokens when context the overflows. However, the model is loaded with context \
         length of only 4096 tokens, which is not enough. Try to load the model with a larger context length, or \
         provide a shorter input",
        "Context length exceeded",
        // Anthropic-style.
        "prompt is too long: 210000 tokens > 200000 maximum",
    ];

    #[test]
    fn every_known_wording_is_an_overflow_whatever_its_case() {
        for message in OVERFLOW_MESSAGES {
            assert!(Overflow::of_message(message).is_some(), "{message}");
            assert!(Overflow::of_message(&message.to_uppercase()).is_some(), "{message}");
        }
    }

    fn numbers(message: &str) -> (Option<u64>, Option<u64>) {
        let overflow = Overflow::of_message(message).unwrap_or_else(|| panic!("not an overflow: {message}"));
        (overflow.prompt_tokens, overflow.window)
    }

    #[test]
    fn reads_each_backends_numbers() {
        // llama.cpp server b11434, as it answered here.
        let llama_cpp = "request (950 tokens) exceeds the available context size (512 tokens), try increasing it";
        assert_eq!(numbers(llama_cpp), (Some(950), Some(512)));
        let shifting = "input (950 tokens) is larger than the max context size (512 tokens). skipping";
        assert_eq!(numbers(shifting), (Some(950), Some(512)));
        // vLLM and OpenAI's Chat Completions.
        let vllm = "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4900 in \
                    the messages, 100 in the completion). Please reduce the length of the messages or completion.";
        assert_eq!(numbers(vllm), (Some(4900), Some(4096)));
        let requested = "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens. \
                         Please reduce the length of the messages.";
        assert_eq!(numbers(requested), (None, Some(4096)));
        let vllm_input = "This model's maximum context length is 4096 tokens. However, your request has 5000 input \
                          tokens. Please reduce the length of the input messages.";
        assert_eq!(numbers(vllm_input), (Some(5000), Some(4096)));
        let openai = "This model's maximum context length is 128000 tokens. However, your messages resulted in \
                      130,512 tokens. Please reduce the length of the messages.";
        assert_eq!(numbers(openai), (Some(130_512), Some(128_000)));
        let decoder = "The decoder prompt (length 5000) is longer than the maximum model length of 4096. Make sure \
                       that `max_model_len` is no smaller than the number of text tokens.";
        assert_eq!(numbers(decoder), (Some(5000), Some(4096)));
        assert_eq!(
            numbers("Input prompt (5000 tokens) is too long and exceeds limit of 4096"),
            (Some(5000), Some(4096))
        );
        // Anthropic.
        assert_eq!(numbers("prompt is too long: 210000 tokens > 200000 maximum"), (Some(210_000), Some(200_000)));
        // LM Studio gives the window it loaded the model with.
        let lm_studio = "Trying to keep the first 5000 tokens when context the overflows. However, the model is \
                         loaded with context length of only 4096 tokens, which is not enough.";
        assert_eq!(numbers(lm_studio), (None, Some(4096)));
        // Wordings without numbers are overflows all the same.
        for message in [
            "the request exceeds the available context size, try increasing it",
            "input length exceeds maximum context length",
            "prompt too long; exceeded max context length by 12 tokens",
            "the input length exceeds the context length",
            "Context length exceeded",
            "Your input exceeds the context window of this model. Please adjust your input and try again.",
        ] {
            let overflow = Overflow::of_error(Some("context_length_exceeded"), message, Overflow::default());
            assert_eq!(overflow.map(|o| o.window), Some(None), "{message}");
        }
    }

    #[test]
    fn llama_cpps_fields_come_before_its_message() {
        let fields = Overflow { prompt_tokens: Some(5000), window: Some(4096) };
        let older = "the request exceeds the available context size, try increasing it";
        assert_eq!(Overflow::of_error(Some("exceed_context_size_error"), older, fields), Some(fields));
        let numbered = "request (1 tokens) exceeds the available context size (2 tokens), try increasing it";
        assert_eq!(Overflow::of_error(None, numbered, fields), Some(fields));
    }

    #[test]
    fn other_errors_are_no_overflow() {
        let too_many_output_tokens = "max_tokens is too large: 5000. This model supports at most 4096 completion \
                                      tokens, whereas you provided 5000.";
        assert_eq!(Overflow::of_message(too_many_output_tokens), None);
        assert_eq!(Overflow::of_error(Some("invalid_request_error"), "Bad request", Overflow::default()), None);
        assert_eq!(Overflow::of_error(Some("400"), "Bad request", Overflow::default()), None);
    }
}
