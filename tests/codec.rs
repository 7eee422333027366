//! Integration tests of the codecs, resampler, WAV files and the call recorder.

mod codec {
    mod g722;
    mod resample;
}
