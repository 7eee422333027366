//! Integration tests of the codecs, resampler, WAV files and the call recorder. Speech is
//! made at test time with espeak-ng and sox (installed by scripts/deps.sh).

mod codec {
    mod adapter;
    mod g722;
    mod opus;
    mod resample;
    pub mod support;
    mod wav;
}

#[global_allocator]
static ALLOCATOR: codec::support::CountingAllocator = codec::support::CountingAllocator;
