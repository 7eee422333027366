//! Writing 16-bit PCM WAV files with `hound`.

use std::path::Path;

use super::WavError;

fn spec(channels: u16, sample_rate: u32) -> hound::WavSpec {
    hound::WavSpec {
        channels,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

fn write_error(path: &Path, error: hound::Error) -> WavError {
    match error {
        hound::Error::IoError(source) => WavError::Io {
            path: path.to_path_buf(),
            source,
        },
        other => WavError::Write {
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    }
}

/// Writes mono 16-bit samples at `sample_rate` hertz to a new WAV file at `path`.
pub fn write_mono(path: &Path, sample_rate: u32, samples: &[i16]) -> Result<(), WavError> {
    let mut writer =
        hound::WavWriter::create(path, spec(1, sample_rate)).map_err(|e| write_error(path, e))?;
    for &sample in samples {
        writer
            .write_sample(sample)
            .map_err(|e| write_error(path, e))?;
    }
    writer.finalize().map_err(|e| write_error(path, e))
}

/// Writes two channels of 16-bit samples at `sample_rate` hertz to a new WAV file at `path`.
/// The shorter channel is padded with silence.
pub fn write_stereo(
    path: &Path,
    sample_rate: u32,
    left: &[i16],
    right: &[i16],
) -> Result<(), WavError> {
    let mut writer =
        hound::WavWriter::create(path, spec(2, sample_rate)).map_err(|e| write_error(path, e))?;
    for index in 0..left.len().max(right.len()) {
        let pair = [
            left.get(index).copied().unwrap_or(0),
            right.get(index).copied().unwrap_or(0),
        ];
        for sample in pair {
            writer
                .write_sample(sample)
                .map_err(|e| write_error(path, e))?;
        }
    }
    writer.finalize().map_err(|e| write_error(path, e))
}

#[cfg(test)]
mod tests {
    use super::super::WavAudio;
    use super::*;

    #[test]
    fn mono_file_reads_back() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("mono.wav");
        write_mono(&path, 8000, &[1, -2, 300]).unwrap();
        let audio = WavAudio::open(&path).unwrap();
        assert_eq!(audio.format.sample_rate, 8000);
        assert_eq!(audio.format.channels, 1);
        assert_eq!(audio.samples, vec![1, -2, 300]);
    }

    #[test]
    fn stereo_file_pads_shorter_channel() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("stereo.wav");
        write_stereo(&path, 16_000, &[100, 200], &[300]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let audio = WavAudio::from_bytes(&bytes).unwrap();
        assert_eq!(audio.format.channels, 2);
        assert_eq!(audio.samples, vec![200, 100]);
    }

    #[test]
    fn missing_directory_is_an_io_error() {
        let error = write_mono(Path::new("/nonexistent/dir/x.wav"), 8000, &[0]).unwrap_err();
        assert!(matches!(error, WavError::Io { .. }), "{error}");
    }
}
