//! RTP header extensions (RFC 3550 §5.3.1) and their RFC 8285 element formats.
//!
//! voicegate negotiates no extension, so the receive path only skips them; this view lets a
//! caller read elements (for example an audio level) without copying.

/// Profile value of the RFC 8285 one-byte header form.
pub const ONE_BYTE_PROFILE: u16 = 0xBEDE;

/// Profile values of the RFC 8285 two-byte header form: 0x100 in the top 12 bits, with 4
/// application bits below.
const TWO_BYTE_PROFILE_MASK: u16 = 0xFFF0;
const TWO_BYTE_PROFILE: u16 = 0x1000;

/// The header extension of one packet: the 16-bit profile value and the data after the
/// length word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderExtension<'a> {
    profile: u16,
    data: &'a [u8],
}

/// One RFC 8285 extension element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionElement<'a> {
    /// Local identifier negotiated with `a=extmap`.
    pub id: u8,
    /// Element data.
    pub data: &'a [u8],
}

impl<'a> HeaderExtension<'a> {
    pub(crate) fn new(profile: u16, data: &'a [u8]) -> Self {
        HeaderExtension { profile, data }
    }

    /// Returns the "defined by profile" field.
    pub fn profile(&self) -> u16 {
        self.profile
    }

    /// Extension data after the 4-byte extension header (a multiple of 4 bytes).
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Iterates the RFC 8285 elements. Yields nothing for other profiles, and stops at the
    /// first element whose length runs past the data.
    pub fn elements(&self) -> ExtensionElements<'a> {
        let form = if self.profile == ONE_BYTE_PROFILE {
            Form::OneByte
        } else if self.profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE {
            Form::TwoByte
        } else {
            Form::Unknown
        };
        ExtensionElements {
            form,
            rest: self.data,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Form {
    OneByte,
    TwoByte,
    Unknown,
}

/// Iterator over the elements of an RFC 8285 header extension.
#[derive(Debug, Clone)]
pub struct ExtensionElements<'a> {
    form: Form,
    rest: &'a [u8],
}

impl<'a> Iterator for ExtensionElements<'a> {
    type Item = ExtensionElement<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.form {
            Form::OneByte => self.next_one_byte(),
            Form::TwoByte => self.next_two_byte(),
            Form::Unknown => None,
        }
    }
}

impl<'a> ExtensionElements<'a> {
    fn next_one_byte(&mut self) -> Option<ExtensionElement<'a>> {
        loop {
            let (&first, after) = self.rest.split_first()?;
            let id = first >> 4;
            // RFC 8285 §4.2: a zero byte is padding, and ID 15 ends processing.
            if first == 0 {
                self.rest = after;
                continue;
            }
            if id == 15 {
                self.rest = &[];
                return None;
            }
            let len = usize::from(first & 0x0f) + 1;
            return self.take(id, len, after);
        }
    }

    fn next_two_byte(&mut self) -> Option<ExtensionElement<'a>> {
        loop {
            let (&id, after) = self.rest.split_first()?;
            // RFC 8285 §4.3: a zero byte in the ID position is padding.
            if id == 0 {
                self.rest = after;
                continue;
            }
            let (&len, after) = after.split_first()?;
            return self.take(id, usize::from(len), after);
        }
    }

    fn take(&mut self, id: u8, len: usize, after: &'a [u8]) -> Option<ExtensionElement<'a>> {
        let Some(data) = after.get(..len) else {
            self.rest = &[];
            return None;
        };
        self.rest = &after[len..];
        Some(ExtensionElement { id, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_byte_elements_skip_padding() {
        let data = [0x10, 0xAA, 0x00, 0x00, 0x21, 0x01, 0x02, 0x00];
        let extension = HeaderExtension::new(ONE_BYTE_PROFILE, &data);
        let elements: Vec<_> = extension.elements().collect();
        assert_eq!(
            elements,
            vec![
                ExtensionElement {
                    id: 1,
                    data: &[0xAA]
                },
                ExtensionElement {
                    id: 2,
                    data: &[0x01, 0x02]
                },
            ]
        );
    }

    #[test]
    fn one_byte_id_15_stops() {
        let data = [0xF0, 0x10, 0xAA, 0x00];
        let extension = HeaderExtension::new(ONE_BYTE_PROFILE, &data);
        assert_eq!(extension.elements().count(), 0);
    }

    #[test]
    fn one_byte_overlong_element_stops() {
        let data = [0x1F, 0xAA, 0x00, 0x00];
        let extension = HeaderExtension::new(ONE_BYTE_PROFILE, &data);
        assert_eq!(extension.elements().count(), 0);
    }

    #[test]
    fn two_byte_elements_allow_empty_data() {
        let data = [0x05, 0x00, 0x00, 0x07, 0x02, 0xAB, 0xCD, 0x00];
        let extension = HeaderExtension::new(0x1003, &data);
        let elements: Vec<_> = extension.elements().collect();
        assert_eq!(
            elements,
            vec![
                ExtensionElement { id: 5, data: &[] },
                ExtensionElement {
                    id: 7,
                    data: &[0xAB, 0xCD]
                },
            ]
        );
    }

    #[test]
    fn two_byte_truncated_length_stops() {
        let data = [0x05];
        let extension = HeaderExtension::new(0x1000, &data);
        assert_eq!(extension.elements().count(), 0);
    }

    #[test]
    fn other_profile_has_no_elements() {
        let data = [0x10, 0xAA, 0x00, 0x00];
        let extension = HeaderExtension::new(0x0001, &data);
        assert_eq!(extension.elements().count(), 0);
        assert_eq!(extension.data(), &data);
    }
}
