//! `iotflow devices …`: the device registry from the command line.
//!
//! Every command opens the registry, does one thing and prints the result:
//! a table for people, or JSON with `--json` (one document on stdout). The
//! registry is the embedded SQLite file under `--data-dir` by default, or
//! any registry URL with `--registry` (`postgres://…`, `sqlite://…`).
//! Secrets (HMAC keys) are printed once, when issued; nothing reads them back.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use iotflow_devices::{
    CertificateFingerprint, CredentialInfo, CredentialKind, Device, DeviceFilter, DeviceStatus,
    Group, IssuedHmacKey, NewDevice, Registry,
};
use serde_json::{Value, json};

/// Manage the device registry: tenants, devices, groups, credentials.
#[derive(Args, Debug)]
pub(crate) struct DevicesArgs {
    /// Registry URL (`postgres://USER@HOST/DB`, `sqlite://PATH?mode=rwc`);
    /// default: the SQLite file under --data-dir. The master key sealing
    /// HMAC keys comes from IOTFLOW_DEVICES_MASTER_KEY (or, for the default
    /// registry, DATA_DIR/registry.key, created on first use).
    #[arg(long, env = "IOTFLOW_REGISTRY", global = true)]
    registry: Option<String>,
    /// Data directory of the embedded registry (DATA_DIR/devices.db).
    #[arg(long, default_value = "iotflow-data", global = true)]
    data_dir: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: DevicesCommand,
}

#[derive(Subcommand, Debug)]
enum DevicesCommand {
    /// Register one device (status active).
    Register(RegisterArgs),
    /// Show one device.
    Get {
        /// Device id.
        id: String,
    },
    /// List devices, filtered, by id.
    List(ListArgs),
    /// Set a device's status.
    Status {
        /// Device id.
        id: String,
        /// New status.
        #[arg(value_enum)]
        status: StatusArg,
    },
    /// Change a device's firmware version or metadata.
    Set(SetArgs),
    /// Register every device of a CSV file, all or nothing. Columns: name,
    /// type, tenant_id (required), id, firmware_version, metadata (a JSON
    /// object), groups (names separated by `;`, created if missing).
    Provision {
        /// The CSV file.
        file: PathBuf,
        /// Issue an HMAC key to each device (printed once).
        #[arg(long)]
        issue_keys: bool,
    },
    /// Tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Groups of devices within a tenant.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Keys and certificates devices authenticate with.
    #[command(subcommand)]
    Credentials(CredentialsCommand),
    /// The change log pipelines follow (sequence, time, device).
    Changes {
        /// Show changes after this sequence number.
        #[arg(long, default_value_t = 0)]
        since: u64,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

#[derive(Args, Debug)]
struct RegisterArgs {
    /// The owning tenant.
    #[arg(long)]
    tenant: String,
    /// Display name.
    #[arg(long)]
    name: String,
    /// Device type, e.g. `thermostat`.
    #[arg(long = "type")]
    device_type: String,
    /// Device id [default: generated].
    #[arg(long)]
    id: Option<String>,
    /// Firmware version.
    #[arg(long)]
    firmware: Option<String>,
    /// Metadata, a JSON object.
    #[arg(long, value_parser = parse_object)]
    metadata: Option<Value>,
    /// Add to this group (id); repeatable.
    #[arg(long = "group")]
    groups: Vec<String>,
    /// Also issue an HMAC key (printed once).
    #[arg(long)]
    hmac_key: bool,
}

#[derive(Args, Debug)]
struct ListArgs {
    /// Only this tenant's devices.
    #[arg(long)]
    tenant: Option<String>,
    /// Only members of this group (id).
    #[arg(long)]
    group: Option<String>,
    /// Only devices with this status.
    #[arg(long, value_enum)]
    status: Option<StatusArg>,
    /// Only devices of this type.
    #[arg(long = "type")]
    device_type: Option<String>,
    /// Page size; with --all, pages are fetched until the end.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Start after this device id (the `next` cursor of a previous page).
    #[arg(long)]
    after: Option<String>,
    /// Every matching device, not one page.
    #[arg(long)]
    all: bool,
}

#[derive(Args, Debug)]
struct SetArgs {
    /// Device id.
    id: String,
    /// New firmware version.
    #[arg(long)]
    firmware: Option<String>,
    /// New metadata (replaces the old), a JSON object.
    #[arg(long, value_parser = parse_object)]
    metadata: Option<Value>,
}

#[derive(Subcommand, Debug)]
enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Tenant id.
        id: String,
        /// Display name [default: the id].
        #[arg(long)]
        name: Option<String>,
    },
    /// List tenants.
    List,
}

#[derive(Subcommand, Debug)]
enum GroupCommand {
    /// Create a group in a tenant; prints its id.
    Create {
        /// The owning tenant.
        #[arg(long)]
        tenant: String,
        /// Group name, unique within the tenant.
        name: String,
    },
    /// List a tenant's groups.
    List {
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
    /// Show a group and its members.
    Show {
        /// Group id.
        id: String,
    },
    /// Add devices to a group.
    Add {
        /// Group id.
        group: String,
        /// Device ids.
        #[arg(required = true)]
        devices: Vec<String>,
    },
    /// Remove devices from a group.
    Remove {
        /// Group id.
        group: String,
        /// Device ids.
        #[arg(required = true)]
        devices: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum CredentialsCommand {
    /// List a device's credentials (never a secret).
    List {
        /// Device id.
        device: String,
    },
    /// Issue an additional HMAC key; the secret is printed once.
    IssueHmac {
        /// Device id.
        device: String,
    },
    /// Issue a new HMAC key and revoke the device's other HMAC keys.
    RotateHmac {
        /// Device id.
        device: String,
    },
    /// Register a JWT public key (PEM) the device signs tokens with.
    AddJwt {
        /// Device id.
        device: String,
        /// Signature algorithm of the key.
        #[arg(long, value_enum)]
        alg: JwtAlg,
        /// The public key, PEM.
        #[arg(long)]
        pem: PathBuf,
    },
    /// Register a client certificate (mTLS) by fingerprint or certificate file.
    AddCert {
        /// Device id.
        device: String,
        /// SHA-256 fingerprint, 64 hex digits (`:` separators allowed).
        #[arg(long, required_unless_present = "cert", conflicts_with = "cert")]
        fingerprint: Option<String>,
        /// The certificate, PEM or DER.
        #[arg(long)]
        cert: Option<PathBuf>,
    },
    /// Revoke a key or certificate.
    Revoke {
        /// Credential id.
        id: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum StatusArg {
    Active,
    Suspended,
    Decommissioned,
}

impl From<StatusArg> for DeviceStatus {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::Active => DeviceStatus::Active,
            StatusArg::Suspended => DeviceStatus::Suspended,
            StatusArg::Decommissioned => DeviceStatus::Decommissioned,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum JwtAlg {
    Es256,
    Eddsa,
}

fn parse_object(s: &str) -> std::result::Result<Value, String> {
    let v: Value = serde_json::from_str(s).map_err(|e| format!("not JSON: {e}"))?;
    if !v.is_object() {
        return Err("must be a JSON object, e.g. {\"site\":\"north\"}".into());
    }
    Ok(v)
}

/// Runs `iotflow devices …`.
pub(crate) fn devices(a: DevicesArgs) -> Result<bool> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let registry = open(&a).await?;
        let out = Out { json: a.json };
        let result = command(&registry, a.command, &out).await;
        registry.close().await;
        result.map(|()| false)
    })
}

async fn open(a: &DevicesArgs) -> Result<Registry> {
    open_registry(a.registry.as_deref(), &a.data_dir).await
}

/// The registry at `url`, or else the embedded one under `data_dir`.
pub(crate) async fn open_registry(url: Option<&str>, data_dir: &Path) -> Result<Registry> {
    Registry::open(url, data_dir)
        .await
        .with_context(|| match url {
            Some(url) => format!("opening the registry at {}", redact(url)),
            None => format!("opening the registry in {}", data_dir.display()),
        })
}

/// A URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

struct Out {
    json: bool,
}

impl Out {
    fn print(&self, value: &Value, table: impl FnOnce() -> String) -> Result<()> {
        let mut stdout = std::io::stdout().lock();
        if self.json {
            writeln!(stdout, "{}", serde_json::to_string_pretty(value)?)?;
        } else {
            write!(stdout, "{}", table())?;
        }
        Ok(())
    }
}

async fn command(reg: &Registry, cmd: DevicesCommand, out: &Out) -> Result<()> {
    match cmd {
        DevicesCommand::Register(r) => {
            let mut new = NewDevice::new(&r.tenant, &r.name, &r.device_type);
            if let Some(id) = r.id {
                new = new.with_id(id);
            }
            if let Some(f) = r.firmware {
                new = new.with_firmware_version(f);
            }
            if let Some(m) = r.metadata {
                new = new.with_metadata(m);
            }
            let device = reg.register_device(new).await?;
            for g in &r.groups {
                reg.add_to_group(g, &device.id)
                    .await
                    .with_context(|| format!("adding {} to group {g}", device.id))?;
            }
            let device = reg.device(&device.id).await?;
            let key = if r.hmac_key {
                Some(reg.issue_hmac_key(&device.id).await?)
            } else {
                None
            };
            let mut v = serde_json::to_value(&device)?;
            if let Some(k) = &key {
                v["hmac_key"] = key_json(k);
            }
            out.print(&v, || {
                let mut s = device_detail(&device);
                if let Some(k) = &key {
                    s.push_str(&key_text(k));
                }
                s
            })?;
        }
        DevicesCommand::Get { id } => {
            let device = reg.device(&id).await?;
            out.print(&serde_json::to_value(&device)?, || device_detail(&device))?;
        }
        DevicesCommand::List(l) => {
            let mut filter = DeviceFilter {
                tenant_id: l.tenant,
                group_id: l.group,
                status: l.status.map(Into::into),
                device_type: l.device_type,
                after: l.after,
                limit: Some(l.limit),
            };
            let mut devices = Vec::new();
            let next = loop {
                let page = reg.list_devices(&filter).await?;
                devices.extend(page.devices);
                match page.next {
                    Some(n) if l.all => filter.after = Some(n),
                    other => break other,
                }
            };
            let v = json!({ "devices": devices, "next": next });
            out.print(&v, || {
                let mut s = device_table(&devices);
                if let Some(n) = &next {
                    s.push_str(&format!("more: --after {n}\n"));
                }
                s
            })?;
        }
        DevicesCommand::Status { id, status } => {
            reg.set_status(&id, status.into()).await?;
            let device = reg.device(&id).await?;
            out.print(&serde_json::to_value(&device)?, || {
                format!("{id}: {}\n", device.status)
            })?;
        }
        DevicesCommand::Set(s) => {
            if s.firmware.is_none() && s.metadata.is_none() {
                anyhow::bail!("nothing to set: give --firmware and/or --metadata");
            }
            if let Some(f) = &s.firmware {
                reg.set_firmware_version(&s.id, f).await?;
            }
            if let Some(m) = &s.metadata {
                reg.set_metadata(&s.id, m).await?;
            }
            let device = reg.device(&s.id).await?;
            out.print(&serde_json::to_value(&device)?, || device_detail(&device))?;
        }
        DevicesCommand::Provision { file, issue_keys } => {
            let f = std::fs::File::open(&file)
                .with_context(|| format!("opening {}", file.display()))?;
            let done = reg
                .provision_csv(std::io::BufReader::new(f), issue_keys)
                .await
                .with_context(|| {
                    format!("provisioning from {} (nothing stored)", file.display())
                })?;
            let v: Vec<Value> = done
                .iter()
                .map(|p| {
                    let mut v = serde_json::to_value(&p.device).unwrap_or(Value::Null);
                    if let Some(k) = &p.hmac_key {
                        v["hmac_key"] = key_json(k);
                    }
                    v
                })
                .collect();
            out.print(&json!({ "provisioned": v }), || {
                let devices: Vec<Device> = done.iter().map(|p| p.device.clone()).collect();
                let mut s = format!("provisioned {} devices\n", done.len());
                s.push_str(&device_table(&devices));
                if issue_keys {
                    s.push_str("\nHMAC keys (shown once, store them now):\n");
                    for k in done.iter().filter_map(|p| p.hmac_key.as_ref()) {
                        s.push_str(&format!("{}  {}  {}\n", k.device_id, k.key_id, k.secret()));
                    }
                }
                s
            })?;
        }
        DevicesCommand::Tenant(TenantCommand::Create { id, name }) => {
            let t = reg
                .create_tenant(&id, name.as_deref().unwrap_or(&id))
                .await?;
            out.print(&serde_json::to_value(&t)?, || {
                format!("tenant {} ({}) created\n", t.id, t.name)
            })?;
        }
        DevicesCommand::Tenant(TenantCommand::List) => {
            let ts = reg.list_tenants().await?;
            out.print(&serde_json::to_value(&ts)?, || {
                table(
                    &["ID", "NAME", "CREATED"],
                    ts.iter()
                        .map(|t| vec![t.id.clone(), t.name.clone(), time(t.created_at)])
                        .collect(),
                )
            })?;
        }
        DevicesCommand::Group(g) => group(reg, g, out).await?,
        DevicesCommand::Credentials(c) => credentials(reg, c, out).await?,
        DevicesCommand::Changes { since, limit } => {
            let changes = reg.changes_since(since, limit).await?;
            let v: Vec<Value> = changes
                .iter()
                .map(|u| json!({ "seq": u.seq, "at": u.at, "device": u.device.as_str(), "info": u.info }))
                .collect();
            out.print(&Value::Array(v), || {
                table(
                    &["SEQ", "AT", "DEVICE", "STATUS", "FIRMWARE", "GROUPS"],
                    changes
                        .iter()
                        .map(|u| {
                            let (status, fw, groups) = match &u.info {
                                Some(i) => (
                                    i.status.to_string(),
                                    i.firmware.as_deref().unwrap_or("-").to_owned(),
                                    i.groups.len().to_string(),
                                ),
                                None => ("removed".into(), "-".into(), "-".into()),
                            };
                            vec![
                                u.seq.to_string(),
                                time(i64::try_from(u.at).unwrap_or(i64::MAX)),
                                u.device.to_string(),
                                status,
                                fw,
                                groups,
                            ]
                        })
                        .collect(),
                )
            })?;
        }
    }
    Ok(())
}

async fn group(reg: &Registry, cmd: GroupCommand, out: &Out) -> Result<()> {
    match cmd {
        GroupCommand::Create { tenant, name } => {
            let g = reg.create_group(&tenant, &name).await?;
            out.print(&serde_json::to_value(&g)?, || {
                format!("group {} created: {}\n", g.name, g.id)
            })?;
        }
        GroupCommand::List { tenant } => {
            let gs = reg.groups_of_tenant(&tenant).await?;
            out.print(&serde_json::to_value(&gs)?, || group_table(&gs))?;
        }
        GroupCommand::Show { id } => {
            let g = reg.group(&id).await?;
            let members = reg.group_members(&id).await?;
            let mut v = serde_json::to_value(&g)?;
            v["members"] = json!(members);
            out.print(&v, || {
                let mut s = group_table(std::slice::from_ref(&g));
                s.push_str(&format!("{} members\n", members.len()));
                for m in &members {
                    s.push_str(&format!("  {m}\n"));
                }
                s
            })?;
        }
        GroupCommand::Add { group, devices } => {
            for d in &devices {
                reg.add_to_group(&group, d)
                    .await
                    .with_context(|| format!("adding {d} to group {group}"))?;
            }
            let v = json!({ "group": group, "added": devices });
            out.print(&v, || format!("added {} to {group}\n", devices.join(", ")))?;
        }
        GroupCommand::Remove { group, devices } => {
            let mut removed = Vec::new();
            let mut absent = Vec::new();
            for d in devices {
                if reg.remove_from_group(&group, &d).await? {
                    removed.push(d);
                } else {
                    absent.push(d);
                }
            }
            let v = json!({ "group": group, "removed": removed, "not_members": absent });
            out.print(&v, || {
                let mut s = format!("removed {} from {group}\n", removed.len());
                if !absent.is_empty() {
                    s.push_str(&format!("not members: {}\n", absent.join(", ")));
                }
                s
            })?;
        }
    }
    Ok(())
}

async fn credentials(reg: &Registry, cmd: CredentialsCommand, out: &Out) -> Result<()> {
    match cmd {
        CredentialsCommand::List { device } => {
            reg.device(&device).await?;
            let cs = reg.credentials(&device).await?;
            let v: Vec<Value> = cs.iter().map(credential_json).collect();
            out.print(&Value::Array(v), || {
                table(
                    &["ID", "KIND", "CREATED", "REVOKED", "FINGERPRINT"],
                    cs.iter()
                        .map(|c| {
                            vec![
                                c.id.clone(),
                                c.kind.as_str().to_owned(),
                                time(c.created_at),
                                c.revoked_at.map_or_else(|| "-".to_owned(), time),
                                c.fingerprint.clone().unwrap_or_else(|| "-".into()),
                            ]
                        })
                        .collect(),
                )
            })?;
        }
        CredentialsCommand::IssueHmac { device } => {
            let k = reg.issue_hmac_key(&device).await?;
            out.print(&key_json(&k), || key_text(&k))?;
        }
        CredentialsCommand::RotateHmac { device } => {
            let k = reg.rotate_hmac_key(&device).await?;
            out.print(&key_json(&k), || key_text(&k))?;
        }
        CredentialsCommand::AddJwt { device, alg, pem } => {
            let text = std::fs::read_to_string(&pem)
                .with_context(|| format!("reading {}", pem.display()))?;
            let kind = match alg {
                JwtAlg::Es256 => CredentialKind::JwtEs256,
                JwtAlg::Eddsa => CredentialKind::JwtEdDsa,
            };
            let c = reg.add_jwt_key(&device, kind, &text).await?;
            out.print(&credential_json(&c), || {
                format!("JWT key added: kid {} ({})\n", c.id, c.kind.as_str())
            })?;
        }
        CredentialsCommand::AddCert {
            device,
            fingerprint,
            cert,
        } => {
            let fp = match (fingerprint, cert) {
                (Some(hex), _) => CertificateFingerprint::from_hex(&hex)?,
                (None, Some(path)) => {
                    let bytes = std::fs::read(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    CertificateFingerprint::of_der(&cert_der(&bytes).with_context(|| {
                        format!("{}: not a PEM or DER certificate", path.display())
                    })?)
                }
                (None, None) => anyhow::bail!("give --fingerprint or --cert"),
            };
            let c = reg.add_certificate(&device, &fp).await?;
            out.print(&credential_json(&c), || {
                format!("certificate added: {} ({})\n", c.id, fp.to_hex())
            })?;
        }
        CredentialsCommand::Revoke { id } => {
            reg.revoke_credential(&id).await?;
            out.print(&json!({ "revoked": id }), || format!("revoked {id}\n"))?;
        }
    }
    Ok(())
}

/// The DER bytes of a certificate file: PEM (the first CERTIFICATE block) or DER.
fn cert_der(bytes: &[u8]) -> Result<Vec<u8>> {
    use base64::Engine as _;
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Ok(bytes.to_vec());
    };
    let begin = "-----BEGIN CERTIFICATE-----";
    let end = "-----END CERTIFICATE-----";
    let Some(start) = text.find(begin) else {
        anyhow::bail!("no {begin} block");
    };
    let rest = &text[start + begin.len()..];
    let stop = rest
        .find(end)
        .with_context(|| format!("no {end} after {begin}"))?;
    let b64: String = rest[..stop].split_whitespace().collect();
    Ok(base64::engine::general_purpose::STANDARD.decode(b64)?)
}

fn key_json(k: &IssuedHmacKey) -> Value {
    json!({ "key_id": k.key_id, "device_id": k.device_id, "secret": k.secret() })
}

fn key_text(k: &IssuedHmacKey) -> String {
    format!(
        "HMAC key for {} (shown once, store it now):\n  key id: {}\n  secret: {}\n",
        k.device_id,
        k.key_id,
        k.secret()
    )
}

fn credential_json(c: &CredentialInfo) -> Value {
    json!({
        "id": c.id,
        "device_id": c.device_id,
        "kind": c.kind.as_str(),
        "fingerprint": c.fingerprint,
        "created_at": c.created_at,
        "revoked_at": c.revoked_at,
    })
}

fn device_detail(d: &Device) -> String {
    let rows = [
        ("id", d.id.clone()),
        ("tenant", d.tenant_id.clone()),
        ("name", d.name.clone()),
        ("type", d.device_type.clone()),
        ("status", d.status.to_string()),
        (
            "firmware",
            d.firmware_version.clone().unwrap_or_else(|| "-".into()),
        ),
        ("groups", d.groups.join(", ")),
        ("metadata", d.metadata.to_string()),
        ("created", time(d.created_at)),
        ("updated", time(d.updated_at)),
        ("last seen", d.last_seen.map_or_else(|| "-".into(), time)),
    ];
    rows.iter()
        .map(|(k, v)| format!("{k:>10}  {v}\n"))
        .collect()
}

fn device_table(devices: &[Device]) -> String {
    table(
        &[
            "ID", "TENANT", "NAME", "TYPE", "STATUS", "FIRMWARE", "GROUPS",
        ],
        devices
            .iter()
            .map(|d| {
                vec![
                    d.id.clone(),
                    d.tenant_id.clone(),
                    d.name.clone(),
                    d.device_type.clone(),
                    d.status.to_string(),
                    d.firmware_version.clone().unwrap_or_else(|| "-".into()),
                    d.groups.len().to_string(),
                ]
            })
            .collect(),
    )
}

fn group_table(groups: &[Group]) -> String {
    table(
        &["ID", "TENANT", "NAME", "CREATED"],
        groups
            .iter()
            .map(|g| {
                vec![
                    g.id.clone(),
                    g.tenant_id.clone(),
                    g.name.clone(),
                    time(g.created_at),
                ]
            })
            .collect(),
    )
}

/// Left-aligned columns, two spaces apart, header first.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(header.iter().map(|h| (*h).to_owned()).collect());
    for r in rows {
        out.push_str(&line(r));
    }
    if out.lines().count() == 1 {
        out.push_str("(none)\n");
    }
    out
}

/// Unix ms as `YYYY-MM-DD HH:MM:SS` UTC.
fn time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Registers the simulated fleet (`d-00000` … ) in the embedded registry
/// under `data_dir`, unless it already holds devices. Tenants `acme` (even
/// devices) and `globex` (odd), eight site groups, two firmware versions.
/// Returns how many devices were registered.
pub(crate) fn provision_demo_fleet(data_dir: &Path, devices: u32) -> Result<usize> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let reg = open_registry(None, data_dir).await?;
        let any = reg.list_devices(&DeviceFilter::default().limit(1)).await?;
        if !any.devices.is_empty() {
            reg.close().await;
            return Ok(0);
        }
        for (id, name) in [("acme", "Acme Corp"), ("globex", "Globex")] {
            match reg.create_tenant(id, name).await {
                Ok(_) | Err(iotflow_devices::Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut csv = String::from("id,name,type,tenant_id,firmware_version,metadata,groups\n");
        for d in 0..devices {
            let tenant = if d % 2 == 0 { "acme" } else { "globex" };
            let site = d % 8;
            let firmware = if d % 10 < 7 { "1.4.2" } else { "1.5.0" };
            csv.push_str(&format!(
                "d-{d:05},Sensor {d},multisensor,{tenant},{firmware},\"{{\"\"site\"\":\"\"site-{site}\"\"}}\",site-{site}\n"
            ));
        }
        let done = reg.provision_csv(csv.as_bytes(), false).await?;
        reg.close().await;
        Ok(done.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_dates() {
        assert_eq!(time(0), "1970-01-01 00:00:00");
        assert_eq!(time(1_767_225_600_000), "2026-01-01 00:00:00");
        assert_eq!(time(951_825_599_000), "2000-02-29 11:59:59");
    }

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn tables_align_and_say_none() {
        let t = table(&["A", "BB"], vec![vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
        assert_eq!(table(&["A"], vec![]), "A\n(none)\n");
    }
}
