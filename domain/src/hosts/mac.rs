//! MAC addresses as nodes send them: `52-54-00-12-34-56` (iPXE's
//! `hexhyp`) or `52:54:00:12:34:56`, either case.

use std::fmt;

/// A MAC address; shown as `52:54:00:12:34:56`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac([u8; 6]);

impl Mac {
    /// Parses the two accepted forms; the error says what is wrong, for a
    /// plain-text 400 answer.
    pub fn parse(text: &str) -> Result<Mac, String> {
        let shown: String = text.chars().take(40).collect();
        let separator = if text.contains('-') { '-' } else { ':' };
        let parts: Vec<&str> = text.split(separator).collect();
        if parts.len() != 6 || text.len() != 17 {
            return Err(format!(
                "“{shown}” is not a MAC address: expected six pairs of hex digits separated by '-' or ':', like 52-54-00-12-34-56"
            ));
        }
        let mut bytes = [0u8; 6];
        for (byte, part) in bytes.iter_mut().zip(&parts) {
            if part.len() != 2 || !part.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!(
                    "“{shown}” is not a MAC address: “{part}” is not a pair of hex digits"
                ));
            }
            *byte = u8::from_str_radix(part, 16).map_err(|e| e.to_string())?;
        }
        Ok(Mac(bytes))
    }

    /// `52-54-00-12-34-56`, as iPXE's `${netX/mac:hexhyp}` and the boot URLs.
    pub fn hexhyp(&self) -> String {
        self.to_string().replace(':', "-")
    }

    /// The six bytes.
    pub fn bytes(&self) -> [u8; 6] {
        self.0
    }

    /// `525400123456`, for default host names.
    pub fn compact(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::Mac;

    #[test]
    fn both_forms_either_case() {
        for text in [
            "52-54-00-12-34-56",
            "52:54:00:12:34:56",
            "52-54-00-12-34-56".to_uppercase().as_str(),
            "52:54:00:AB:cd:56",
        ] {
            let mac = Mac::parse(text).unwrap();
            assert_eq!(mac.to_string().len(), 17);
        }
        let mac = Mac::parse("52-54-00-AB-CD-EF").unwrap();
        assert_eq!(mac.to_string(), "52:54:00:ab:cd:ef");
        assert_eq!(mac.hexhyp(), "52-54-00-ab-cd-ef");
        assert_eq!(mac.compact(), "525400abcdef");
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        for bad in [
            "",
            "52-54-00-12-34",
            "52-54-00-12-34-56-78",
            "52:54-00:12-34:56",
            "5254.0012.3456",
            "525400123456",
            "52-54-00-12-34-5g",
            "52-54-00-12-34-+5",
            "${net0/mac:hexhyp}",
            "52--4-00-12-34-56",
        ] {
            let err = Mac::parse(bad).unwrap_err();
            assert!(err.contains("not a MAC address"), "{bad}: {err}");
        }
    }
}
