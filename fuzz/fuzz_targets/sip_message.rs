//! Parses arbitrary bytes as one SIP message, and re-parses what the rejection path and the
//! typed header views produce from it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use voicegate::sip::message::{Message, parse_message, response_to, response_to_rejected};

fuzz_target!(|data: &[u8]| {
    let source = "127.0.0.1:5060".parse().expect("literal address");
    match parse_message(data, 65_535) {
        Ok(Message::Request(request)) => {
            let response = response_to(&request, 200, "OK", Some("tag"), source).finish_empty();
            // Whatever we answer must parse as a response.
            assert!(matches!(parse_message(&response, 65_535), Ok(Message::Response(_))));
        }
        Ok(Message::Response(_)) => {}
        Err(error) => {
            if let Some(info) = error.reply {
                let response = response_to_rejected(&info, error.status, error.defect, source).finish_empty();
                assert!(response.starts_with(b"SIP/2.0 "));
            }
        }
    }
});
