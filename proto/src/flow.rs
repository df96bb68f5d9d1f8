//! The probe protocol and the Paris flow identifier.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::tagged::{self, Tagged};

/// The transport a trace probes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// ICMP echo requests.
    Icmp,
    /// UDP datagrams.
    Udp,
    /// TCP SYNs.
    Tcp,
}

impl Protocol {
    /// The name used on the wire: `"icmp"`, `"udp"` or `"tcp"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Icmp => "icmp",
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Paris flow identifier: the header fields per-flow load balancers hash
/// on, held constant for a whole trace so that every probe takes one path.
///
/// Serialized as an object tagged by `"protocol"`, e.g.
/// `{"protocol": "udp", "src_port": 33434, "dst_port": 33435}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "protocol", rename_all = "lowercase")]
pub enum FlowId {
    /// ICMP echo: balancers hash on type, code and checksum, so the prober
    /// keeps the checksum fixed (by choosing the payload) across probes.
    Icmp {
        /// ICMP type of the probes (8, echo request).
        icmp_type: u8,
        /// ICMP code of the probes (0).
        icmp_code: u8,
        /// The checksum every probe carries.
        checksum: u16,
    },
    /// UDP: the port pair is the flow.
    Udp {
        /// Source port of every probe.
        src_port: u16,
        /// Destination port of every probe.
        dst_port: u16,
    },
    /// TCP: the port pair is the flow.
    Tcp {
        /// Source port of every probe.
        src_port: u16,
        /// Destination port of every probe.
        dst_port: u16,
    },
}

impl FlowId {
    /// The protocol this flow belongs to.
    pub const fn protocol(&self) -> Protocol {
        match self {
            Self::Icmp { .. } => Protocol::Icmp,
            Self::Udp { .. } => Protocol::Udp,
            Self::Tcp { .. } => Protocol::Tcp,
        }
    }
}

impl<'de> Deserialize<'de> for FlowId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        tagged::deserialize(deserializer)
    }
}

impl Tagged for FlowId {
    const TAG: &'static str = "protocol";
    const EXPECTING: &'static str = "a flow identifier object with a \"protocol\" field";
    type Tag = Protocol;

    fn variant<'de, D: Deserializer<'de>>(tag: Protocol, fields: D) -> Result<Self, D::Error> {
        // The variants' fields, as structs serde can deserialize from the
        // rest of the object.
        #[derive(Deserialize)]
        struct Echo {
            icmp_type: u8,
            icmp_code: u8,
            checksum: u16,
        }
        #[derive(Deserialize)]
        struct Ports {
            src_port: u16,
            dst_port: u16,
        }
        Ok(match tag {
            Protocol::Icmp => {
                let Echo {
                    icmp_type,
                    icmp_code,
                    checksum,
                } = Echo::deserialize(fields)?;
                Self::Icmp {
                    icmp_type,
                    icmp_code,
                    checksum,
                }
            }
            Protocol::Udp => {
                let Ports { src_port, dst_port } = Ports::deserialize(fields)?;
                Self::Udp { src_port, dst_port }
            }
            Protocol::Tcp => {
                let Ports { src_port, dst_port } = Ports::deserialize(fields)?;
                Self::Tcp { src_port, dst_port }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_knows_its_protocol() {
        let icmp = FlowId::Icmp {
            icmp_type: 8,
            icmp_code: 0,
            checksum: 0xbeef,
        };
        assert_eq!(icmp.protocol(), Protocol::Icmp);
        assert_eq!(
            FlowId::Udp {
                src_port: 1,
                dst_port: 2
            }
            .protocol(),
            Protocol::Udp
        );
        assert_eq!(
            FlowId::Tcp {
                src_port: 1,
                dst_port: 2
            }
            .protocol(),
            Protocol::Tcp
        );
    }

    #[test]
    fn flow_is_tagged_by_protocol() {
        let flow = FlowId::Udp {
            src_port: 33434,
            dst_port: 33435,
        };
        let json = serde_json::to_string(&flow).unwrap();
        assert_eq!(
            json,
            r#"{"protocol":"udp","src_port":33434,"dst_port":33435}"#
        );
        assert_eq!(serde_json::from_str::<FlowId>(&json).unwrap(), flow);
    }

    #[test]
    fn tag_may_come_after_the_fields() {
        let flow: FlowId =
            serde_json::from_str(r#"{"src_port":1,"dst_port":2,"extra":[1],"protocol":"tcp"}"#)
                .unwrap();
        assert_eq!(
            flow,
            FlowId::Tcp {
                src_port: 1,
                dst_port: 2
            }
        );
    }

    #[test]
    fn bad_flows_say_what_is_wrong() {
        for (json, expected) in [
            (r#"{"protocol":"sctp"}"#, "unknown variant `sctp`"),
            (
                r#"{"protocol":"udp","src_port":1}"#,
                "missing field `dst_port`",
            ),
            (r#"{"src_port":1,"dst_port":2}"#, "missing field `protocol`"),
            (r"{}", "missing field `protocol`"),
            (
                r#"{"dst_port":"x","protocol":"udp"}"#,
                "dst_port: invalid type",
            ),
            (r#"{"a":1,"a":2,"protocol":"udp"}"#, "duplicate field `a`"),
            ("[]", "expected a flow identifier object"),
        ] {
            let err = serde_json::from_str::<FlowId>(json).unwrap_err();
            assert!(err.to_string().contains(expected), "{json}: {err}");
        }
    }
}
