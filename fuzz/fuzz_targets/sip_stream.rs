//! Feeds arbitrary bytes to the TCP stream framer in chunks whose sizes come from the input,
//! and parses every framed message.

#![no_main]

use libfuzzer_sys::fuzz_target;
use voicegate::sip::message::{Frame, StreamFramer, parse_message};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, data)) = data.split_first() else {
        return;
    };
    let mut framer = StreamFramer::new(4096);
    for piece in data.chunks(usize::from(chunk).max(1)) {
        framer.push(piece);
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::Message(message))) => {
                    let _ = parse_message(&message, 4096);
                }
                Ok(Some(Frame::Ping)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
