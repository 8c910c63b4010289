//! What the registry stores: tenants, devices, groups.

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A tenant: the owner of devices and groups; data never crosses tenants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// Stable id, chosen by the operator.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
}

pub use iotflow_types::DeviceStatus;

/// A registered device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// Globally unique id; readings carry it.
    pub id: String,
    /// The tenant owning the device.
    pub tenant_id: String,
    /// Display name.
    pub name: String,
    /// Device model or kind (`thermostat`, `pump-v2`, ...).
    pub device_type: String,
    /// Lifecycle status.
    pub status: DeviceStatus,
    /// Reported or assigned firmware version, if known.
    pub firmware_version: Option<String>,
    /// Free-form JSON object.
    pub metadata: serde_json::Value,
    /// Ids of the groups the device is in, sorted.
    pub groups: Vec<String>,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
    /// Last change of any field above, Unix milliseconds.
    pub updated_at: i64,
    /// Last time the device was seen sending, Unix milliseconds.
    pub last_seen: Option<i64>,
}

/// What to register: [`NewDevice::new`] plus `with_*` for the optional fields.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDevice {
    pub(crate) id: Option<String>,
    pub(crate) tenant_id: String,
    pub(crate) name: String,
    pub(crate) device_type: String,
    pub(crate) firmware_version: Option<String>,
    pub(crate) metadata: serde_json::Value,
}

impl NewDevice {
    /// A device of `tenant_id` named `name` of type `device_type`; its id is
    /// generated unless [`with_id`](Self::with_id) gives one.
    pub fn new(
        tenant_id: impl Into<String>,
        name: impl Into<String>,
        device_type: impl Into<String>,
    ) -> Self {
        NewDevice {
            id: None,
            tenant_id: tenant_id.into(),
            name: name.into(),
            device_type: device_type.into(),
            firmware_version: None,
            metadata: serde_json::Value::Object(Default::default()),
        }
    }

    /// Uses this id instead of a generated one.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the firmware version.
    pub fn with_firmware_version(mut self, version: impl Into<String>) -> Self {
        self.firmware_version = Some(version.into());
        self
    }

    /// Sets the metadata; it must be a JSON object.
    pub fn with_metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = metadata;
        self
    }
}

/// A named set of devices of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Generated id.
    pub id: String,
    /// The tenant owning the group; only its devices may join.
    pub tenant_id: String,
    /// Name, unique within the tenant.
    pub name: String,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
}

/// Checks an id or name given by a caller: non-empty, at most 128 bytes, no
/// control characters (ids end up in URLs, logs and signed strings).
pub(crate) fn check_ident(field: &'static str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.len() > 128 {
        return Err(Error::invalid(field, "longer than 128 bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "contains control characters"));
    }
    Ok(())
}
