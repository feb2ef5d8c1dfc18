//! The sub-CA private key in locked, undumpable, zeroized-on-drop pages, and process hardening; the crate's only `unsafe`.
//!
//! # What is locked
//! The key's PKCS#8 document (the only long-lived copy of the private key) lives in a private
//! anonymous mapping of its own, page-aligned and used for nothing else, which is
//! - locked in RAM with `mlock` through `region` (lock mode `keyPages`, the default, and `all`),
//! - excluded from core dumps with `madvise(MADV_DONTDUMP)` (every mode),
//! - overwritten with zeros (volatile writes) before it is unlocked and unmapped on drop.
//!
//! The process is made non-dumpable (`PR_SET_DUMPABLE 0`, which also refuses `ptrace` attach by
//! non-root peers) and its core-file limit set to 0 by [`harden_process`].
//!
//! For EC keys the locked bytes are the raw private scalar (big-endian, fixed length); for RSA and
//! Ed25519 they are the PKCS#8 document.
//!
//! # What is not locked, and for how long
//! AWS-LC keeps its keys in its own heap objects. To sign, [`LockedKey`] builds an AWS-LC key
//! object from the locked bytes, signs, and frees it at once: for the few microseconds of each
//! signature the private scalar also exists in AWS-LC's heap, which `OPENSSL_free` overwrites
//! (`OPENSSL_cleanse`) before releasing. For EC keys that object is a bare `EC_KEY` holding only
//! the scalar, wrapped in an `EVP_PKEY` and used through `EVP_DigestSign`: aws-lc-rs's
//! constructors re-derive the public point and compare it (`EC_KEY_check_key`, a full scalar
//! multiplication, ~40% of a P-256 signature), which proves nothing new for a key we generated and
//! checked once at generation. Key generation likewise passes through an AWS-LC object and an
//! aws-lc-rs `Document`, both wiped on drop, before the bytes are copied into the locked mapping.
//! Lock mode `all` (`mlockall`) closes the remaining window (those transient heap pages are locked
//! too) at the price of needing `CAP_IPC_LOCK` or a large `ulimit -l`.
//!
//! # One AWS-LC
//! The raw EC path calls the sys crate aws-lc-rs itself links: `aws-lc-sys` in the default build,
//! `aws-lc-fips-sys` (the FIPS module) under `--features fips`, each pinned with `=` in Cargo.toml
//! to the version in Cargo.lock; `scripts/check-one-aws-lc` (run by `scripts/test`) fails when the
//! default build's tree holds more than one AWS-LC sys crate.

use std::fmt;
use std::sync::Once;

use aws_lc_rs::encoding::{AsBigEndian, AsDer};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};

use firefly_core::KeyAlgorithm;

/// How the sub-CA key is kept out of swap and core dumps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LockMode {
    /// Lock only the pages that hold key material (a few KiB; fits the default `RLIMIT_MEMLOCK`).
    #[default]
    KeyPages,
    /// `mlockall(MCL_CURRENT | MCL_FUTURE)` as well: needs `CAP_IPC_LOCK` or a large `ulimit -l`.
    All,
    /// Nothing locked (development only); the key is still zeroized and excluded from dumps.
    Disabled,
}

impl LockMode {
    /// The spelling used in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeyPages => "keyPages",
            Self::All => "all",
            Self::Disabled => "disabled",
        }
    }
}

/// Errors of key generation, locking and process hardening.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockedKeyError {
    /// `mlock`/`mlockall` was refused: the process may not lock that much memory.
    #[error(
        "cannot lock the sub-CA key in memory (signer.lockMode={mode}): {source}; grant the container CAP_IPC_LOCK or raise the locked-memory limit (`ulimit -l`, RLIMIT_MEMLOCK, now {limit}), or set signer.lockMode=disabled for development only"
    )]
    Lock {
        /// The configured lock mode.
        mode: &'static str,
        /// The current `RLIMIT_MEMLOCK` soft limit, readable.
        limit: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Mapping, `madvise`, `prctl` or `setrlimit` failed.
    #[error("cannot protect the sub-CA key: {call} failed: {source}")]
    Os {
        /// The system call.
        call: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The sub-CA provider asks for an algorithm we cannot hold as a sub-CA key.
    #[error(
        "sub-CA key algorithm {0} is not supported (supported: EC_P256, EC_P384, EC_ED25519, RSA_2048, RSA_3072, RSA_4096)"
    )]
    UnsupportedAlgorithm(KeyAlgorithm),
    /// AWS-LC failed to generate or load the key.
    #[error("sub-CA key generation failed for {0}")]
    Generation(KeyAlgorithm),
}

/// Makes the process non-dumpable, sets its core-file limit to 0, and with [`LockMode::All`]
/// locks all its current and future pages.
///
/// # Errors
/// [`LockedKeyError::Lock`] when `mlockall` is refused (naming `CAP_IPC_LOCK` and `ulimit -l`);
/// [`LockedKeyError::Os`] when `prctl` or `setrlimit` fail.
pub fn harden_process(mode: LockMode) -> Result<(), LockedKeyError> {
    // SAFETY: prctl(PR_SET_DUMPABLE) takes integer arguments only and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(LockedKeyError::Os {
            call: "prctl(PR_SET_DUMPABLE, 0)",
            source: std::io::Error::last_os_error(),
        });
    }
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `zero` is a valid rlimit that outlives the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) } != 0 {
        return Err(LockedKeyError::Os {
            call: "setrlimit(RLIMIT_CORE, 0)",
            source: std::io::Error::last_os_error(),
        });
    }
    if mode == LockMode::All {
        // Pages are locked as they are first touched (MCL_ONFAULT), not all at once: the
        // allocator reserves address space a gigabyte at a time, which mimalloc commits at once
        // where the kernel overcommits, and locking every mapped page would make all of it
        // resident. A page that ever holds data is locked before the data is written.
        // SAFETY: mlockall takes flags only.
        if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE | libc::MCL_ONFAULT) } != 0
        {
            return Err(LockedKeyError::Lock {
                mode: mode.as_str(),
                limit: memlock_limit(),
                source: std::io::Error::last_os_error(),
            });
        }
    }
    Ok(())
}

/// Whether the process is currently dumpable (`prctl(PR_GET_DUMPABLE)`).
pub fn process_is_dumpable() -> bool {
    // SAFETY: PR_GET_DUMPABLE reads a flag and takes no pointers.
    unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) != 0 }
}

/// The allocator `firefly` installs as its global allocator: mimalloc, whose size-segregated
/// pages keep allocation cheap when a large backlog has left the heap fragmented (glibc's
/// `malloc`/`free` took a fifth of the controller's CPU during a 100,000-request drain, mimalloc
/// a small fraction of that). Install it with [`prepare_allocator`] as the first call of `main`.
pub use mimalloc::MiMalloc as Allocator;

/// Prepares the process's memory (call it first in `main`): transparent huge pages off for this
/// process (`prctl(PR_SET_THP_DISABLE)`). Where the kernel backs every large aligned mapping with
/// 2 MiB pages (`enabled=always`, the default on RHEL and OpenShift nodes), a partly used huge
/// page stays resident whole and freed memory cannot be given back in 4 KiB pages.
///
/// Returns whether THP is off.
pub fn prepare_allocator() -> bool {
    // SAFETY: prctl(PR_SET_THP_DISABLE) takes integer arguments only and touches no memory.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0 }
}

/// Gives the heap's free pages back to the OS, wherever they are in the heap: mimalloc's
/// `mi_collect(true)` (the Rust heap) and glibc's `malloc_trim(0)` (what C code allocates);
/// returns whether glibc released anything.
///
/// Both keep freed memory mapped for a while (mimalloc purges a free page after a delay and only
/// when it is called again; glibc's `free` only returns the top of each arena), so after a burst
/// (a large backlog listed, decided and dropped) the freed memory would stay resident. Under
/// [`LockMode::All`] the pages are locked: the kernel refuses to drop locked pages
/// (`MADV_DONTNEED`), so almost nothing can be released.
pub fn release_free_heap() -> bool {
    release_thread_heap();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes an integer, touches only the allocator's own free chunks, and
        // takes the allocator's locks like malloc and free do.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Gives the calling thread's free heap pages back to the OS (mimalloc's `mi_collect(true)`).
///
/// mimalloc keeps a heap per thread, and a forced collect visits only the calling thread's pages
/// (and forces purges only in the segments they are in): a release from one thread
/// ([`release_free_heap`]) can leave what the async workers' heaps hold resident. Each worker
/// calls this once after a release (see `firefly::heap`).
pub fn release_thread_heap() {
    // SAFETY: mi_collect takes a flag and only walks mimalloc's own free pages, under its locks.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// The soft `RLIMIT_CORE` (bytes); `None` when it cannot be read.
pub fn core_file_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut lim) } != 0 {
        return None;
    }
    Some(lim.rlim_cur)
}

fn memlock_limit() -> String {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return "unknown".to_string();
    }
    if lim.rlim_cur == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        format!("{} bytes", lim.rlim_cur)
    }
}

/// A sub-CA private key whose only long-lived copy lives in locked, undumpable pages.
///
/// Implements rcgen's [`rcgen::SigningKey`], so the issuing core signs with it directly.
/// `Debug` prints a placeholder; there is no `Display`, `Clone` or serialization.
pub struct LockedKey {
    algorithm: KeyAlgorithm,
    /// EC: the raw private scalar; RSA and Ed25519: the PKCS#8 document.
    pkcs8: LockedBytes,
    /// The public key as rcgen wants it: EC point, Ed25519 key, or PKCS#1 `RSAPublicKey`.
    public_key: Vec<u8>,
}

impl fmt::Debug for LockedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LockedKey({}, <private key redacted>)", self.algorithm)
    }
}

impl LockedKey {
    /// Generates a fresh key of `algorithm` and moves it into locked pages.
    ///
    /// # Errors
    /// [`LockedKeyError::UnsupportedAlgorithm`] for EC_P521; [`LockedKeyError::Lock`] when the
    /// pages cannot be locked under `mode`; [`LockedKeyError::Generation`] on AWS-LC failure.
    pub fn generate(algorithm: KeyAlgorithm, mode: LockMode) -> Result<LockedKey, LockedKeyError> {
        let failed = |_| LockedKeyError::Generation(algorithm);
        let rng = SystemRandom::new();
        // Each aws-lc-rs buffer below wipes itself on drop; the locked copy is the one that stays.
        let (pkcs8, public_key) = match algorithm {
            KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => {
                let alg = ecdsa_algorithm(algorithm);
                let document = EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(failed)?;
                let pair = EcdsaKeyPair::from_pkcs8(alg, document.as_ref())
                    .map_err(|_| LockedKeyError::Generation(algorithm))?;
                let public = pair.public_key().as_ref().to_vec();
                // The scalar buffer wipes itself on drop, like the document.
                let scalar = pair.private_key().as_be_bytes().map_err(failed)?;
                let locked = LockedBytes::copy_of(scalar.as_ref(), mode)?;
                // Signing uses the scalar alone: prove once that it signs for `public`.
                let probe = b"firefly locked key self-test";
                let signature = ec_sign(algorithm, locked.as_slice(), probe).map_err(failed)?;
                signature::UnparsedPublicKey::new(ecdsa_verification(algorithm), &public)
                    .verify(probe, &signature)
                    .map_err(failed)?;
                (locked, public)
            }
            KeyAlgorithm::EcEd25519 => {
                let document = Ed25519KeyPair::generate_pkcs8(&rng).map_err(failed)?;
                let pair = Ed25519KeyPair::from_pkcs8(document.as_ref())
                    .map_err(|_| LockedKeyError::Generation(algorithm))?;
                let public = pair.public_key().as_ref().to_vec();
                (LockedBytes::copy_of(document.as_ref(), mode)?, public)
            }
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                let size = match algorithm {
                    KeyAlgorithm::Rsa2048 => aws_lc_rs::rsa::KeySize::Rsa2048,
                    KeyAlgorithm::Rsa3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
                    _ => aws_lc_rs::rsa::KeySize::Rsa4096,
                };
                let pair = RsaKeyPair::generate(size).map_err(failed)?;
                let der = pair.as_der().map_err(failed)?;
                let public = pair.public_key().as_ref().to_vec();
                (LockedBytes::copy_of(der.as_ref(), mode)?, public)
            }
            KeyAlgorithm::EcP521 => return Err(LockedKeyError::UnsupportedAlgorithm(algorithm)),
        };
        Ok(LockedKey {
            algorithm,
            pkcs8,
            public_key,
        })
    }

    /// The key algorithm.
    pub fn key_algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// Whether the key's pages are locked in RAM.
    pub fn is_locked(&self) -> bool {
        self.pkcs8.is_locked()
    }

    /// DER `SubjectPublicKeyInfo` of the key.
    pub fn public_key_spki_der(&self) -> Vec<u8> {
        rcgen::PublicKeyData::subject_public_key_info(self)
    }

    fn sign_message(&self, msg: &[u8]) -> Result<Vec<u8>, aws_lc_rs::error::Unspecified> {
        let rng = SystemRandom::new();
        let secret = self.pkcs8.as_slice();
        match self.algorithm {
            KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => ec_sign(self.algorithm, secret, msg),
            KeyAlgorithm::EcEd25519 => {
                let pair = Ed25519KeyPair::from_pkcs8(secret)?;
                Ok(pair.sign(msg).as_ref().to_vec())
            }
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                let pair = RsaKeyPair::from_pkcs8(secret)?;
                let mut out = vec![0; pair.public_modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, msg, &mut out)?;
                Ok(out)
            }
            KeyAlgorithm::EcP521 => Err(aws_lc_rs::error::Unspecified),
        }
    }

    #[cfg(test)]
    pub(crate) fn secret_for_tests(&self) -> &[u8] {
        self.pkcs8.as_slice()
    }
}

fn ecdsa_verification(algorithm: KeyAlgorithm) -> &'static signature::EcdsaVerificationAlgorithm {
    match algorithm {
        KeyAlgorithm::EcP384 => &signature::ECDSA_P384_SHA384_ASN1,
        _ => &signature::ECDSA_P256_SHA256_ASN1,
    }
}

/// Owns an AWS-LC object and frees it (free functions cleanse what they release).
struct Owned<T> {
    ptr: *mut T,
    free: unsafe extern "C" fn(*mut T),
}

impl<T> Owned<T> {
    fn new(
        ptr: *mut T,
        free: unsafe extern "C" fn(*mut T),
    ) -> Result<Self, aws_lc_rs::error::Unspecified> {
        if ptr.is_null() {
            return Err(aws_lc_rs::error::Unspecified);
        }
        Ok(Owned { ptr, free })
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        // SAFETY: `ptr` came non-null from the matching AWS-LC constructor and is freed only here.
        unsafe { (self.free)(self.ptr) };
    }
}

/// The AWS-LC aws-lc-rs links: `aws-lc-fips-sys` (its FIPS module) under `--features fips`, else
/// `aws-lc-sys`; both pinned in Cargo.toml to the exact versions aws-lc-rs uses, so the raw EC path
/// below signs inside the same library (and, in a FIPS build, the same FIPS module).
#[cfg(feature = "fips")]
use aws_lc_fips_sys as sys;
#[cfg(not(feature = "fips"))]
use aws_lc_sys as sys;

/// ECDSA (ASN.1 DER signature) over SHA-256 (P-256) or SHA-384 (P-384) with the raw scalar,
/// through `EVP_DigestSign` (the module's signing service: hashing and signing both inside
/// AWS-LC, counted by its FIPS service indicator) on a bare `EC_KEY` holding only the scalar.
///
/// The transient `BIGNUM`, `EC_KEY` and `EVP_PKEY` are released with `BN_clear_free` /
/// `EC_KEY_free` / `EVP_PKEY_free`, which overwrite the scalar before freeing it.
fn ec_sign(
    algorithm: KeyAlgorithm,
    scalar: &[u8],
    msg: &[u8],
) -> Result<Vec<u8>, aws_lc_rs::error::Unspecified> {
    let fail = |ok: std::os::raw::c_int| {
        if ok == 1 {
            Ok(())
        } else {
            Err(aws_lc_rs::error::Unspecified)
        }
    };
    // SAFETY: EVP_sha256/EVP_sha384 return pointers to static digest descriptions.
    let (nid, md) = match algorithm {
        KeyAlgorithm::EcP256 => (sys::NID_X9_62_prime256v1, unsafe { sys::EVP_sha256() }),
        KeyAlgorithm::EcP384 => (sys::NID_secp384r1, unsafe { sys::EVP_sha384() }),
        _ => return Err(aws_lc_rs::error::Unspecified),
    };
    // SAFETY: a constructor taking an integer; the result is checked and owned by `key`.
    let key = Owned::new(
        unsafe { sys::EC_KEY_new_by_curve_name(nid) },
        sys::EC_KEY_free,
    )?;
    // SAFETY: `scalar` is a live slice of `scalar.len()` bytes; a null `ret` asks for a new BIGNUM.
    let bn = Owned::new(
        unsafe { sys::BN_bin2bn(scalar.as_ptr(), scalar.len(), std::ptr::null_mut()) },
        sys::BN_clear_free,
    )?;
    // SAFETY: both pointers are live objects owned above; AWS-LC copies the scalar (range-checked).
    fail(unsafe { sys::EC_KEY_set_private_key(key.ptr, bn.ptr) })?;
    drop(bn);
    // SAFETY: a constructor without arguments; the result is checked and owned by `pkey`.
    let pkey = Owned::new(unsafe { sys::EVP_PKEY_new() }, sys::EVP_PKEY_free)?;
    // SAFETY: both live; set1 takes its own reference to the EC_KEY (ours is freed by `key`).
    fail(unsafe { sys::EVP_PKEY_set1_EC_KEY(pkey.ptr, key.ptr) })?;
    // SAFETY: a constructor without arguments; the result is checked and owned by `ctx`.
    let ctx = Owned::new(unsafe { sys::EVP_MD_CTX_new() }, sys::EVP_MD_CTX_free)?;
    // SAFETY: `ctx` and `pkey` are live, `md` is static; no engine, no out-pointer for the PKEY_CTX.
    fail(unsafe {
        sys::EVP_DigestSignInit(
            ctx.ptr,
            std::ptr::null_mut(),
            md,
            std::ptr::null_mut(),
            pkey.ptr,
        )
    })?;
    // SAFETY: `key` is a live EC_KEY with its group set.
    let mut len = unsafe { sys::ECDSA_size(key.ptr) };
    let mut out = vec![0u8; len];
    // SAFETY: `out` has `len` writable bytes (ECDSA_size bounds the DER signature), `msg` is a live
    // slice, `len` is a valid in/out pointer.
    fail(unsafe {
        sys::EVP_DigestSign(ctx.ptr, out.as_mut_ptr(), &mut len, msg.as_ptr(), msg.len())
    })?;
    out.truncate(len);
    Ok(out)
}

fn ecdsa_algorithm(algorithm: KeyAlgorithm) -> &'static signature::EcdsaSigningAlgorithm {
    match algorithm {
        KeyAlgorithm::EcP384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        _ => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
    }
}

impl rcgen::PublicKeyData for LockedKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public_key
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self.algorithm {
            KeyAlgorithm::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyAlgorithm::EcEd25519 => &rcgen::PKCS_ED25519,
            // `generate` refuses P-521, so only RSA sizes reach this arm.
            _ => &rcgen::PKCS_RSA_SHA256,
        }
    }
}

impl rcgen::SigningKey for LockedKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.sign_message(msg)
            .map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

/// A private anonymous mapping of whole pages holding secret bytes: locked (unless disabled),
/// excluded from core dumps, zeroized before it is released.
///
/// The mapping and the lock are `region`'s (`region::alloc`, `region::lock`, both released on
/// drop); `madvise(MADV_DONTDUMP)` is the one call `region` does not offer, so it stays on libc.
struct LockedBytes {
    // Declaration order is drop order: the pages are unlocked before they are unmapped.
    lock: Option<region::LockGuard>,
    map: region::Allocation,
    len: usize,
}

// SAFETY: the mapping is owned exclusively by this value; shared access is read-only (`as_slice`).
unsafe impl Send for LockedBytes {}
// SAFETY: as above; no interior mutability.
unsafe impl Sync for LockedBytes {}

fn region_error(e: region::Error) -> std::io::Error {
    match e {
        region::Error::SystemCall(source) => source,
        other => std::io::Error::other(other.to_string()),
    }
}

impl LockedBytes {
    fn copy_of(secret: &[u8], mode: LockMode) -> Result<LockedBytes, LockedKeyError> {
        let page = region::page::size();
        let map_len = secret.len().div_ceil(page).max(1) * page;
        let mut map = region::alloc(map_len, region::Protection::READ_WRITE).map_err(|e| {
            LockedKeyError::Os {
                call: "mmap",
                source: region_error(e),
            }
        })?;
        let raw = map.as_mut_ptr::<libc::c_void>();
        // SAFETY: [raw, raw + map_len) is our mapping.
        if unsafe { libc::madvise(raw, map.len(), libc::MADV_DONTDUMP) } != 0 {
            return Err(LockedKeyError::Os {
                call: "madvise(MADV_DONTDUMP)",
                source: std::io::Error::last_os_error(),
            });
        }
        let lock = if mode != LockMode::Disabled {
            // Lock before the secret is written, so it never sits in a swappable page.
            let guard =
                region::lock(map.as_ptr::<u8>(), map.len()).map_err(|e| LockedKeyError::Lock {
                    mode: mode.as_str(),
                    limit: memlock_limit(),
                    source: region_error(e),
                })?;
            Some(guard)
        } else {
            warn_unlocked_once();
            None
        };
        // SAFETY: the mapping holds map_len >= secret.len() writable bytes and does not overlap `secret`.
        unsafe {
            std::ptr::copy_nonoverlapping(secret.as_ptr(), map.as_mut_ptr::<u8>(), secret.len())
        };
        Ok(LockedBytes {
            lock,
            map,
            len: secret.len(),
        })
    }

    fn is_locked(&self) -> bool {
        self.lock.is_some()
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: the first `len` bytes of the live mapping were initialised by `copy_of`.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr::<u8>(), self.len) }
    }

    /// Overwrites the whole mapping with zeros through volatile writes the optimiser keeps.
    fn wipe(&mut self) {
        let len = self.map.len();
        // SAFETY: the mapping is live, writable and exclusively ours (`&mut self`).
        let all = unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr::<u8>(), len) };
        zeroize::Zeroize::zeroize(all);
    }
}

impl Drop for LockedBytes {
    fn drop(&mut self) {
        // The fields then unlock (`LockGuard`) and unmap (`Allocation`) the zeroized pages.
        self.wipe();
    }
}

fn warn_unlocked_once() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        tracing::warn!("signer.lockMode=disabled: the sub-CA key is not locked in RAM and may be swapped (development only)");
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::SigningKey as _;

    /// A KiB figure of `/proc/self/status`, e.g. `VmLck:`.
    fn status_kib(field: &str) -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    fn vm_lck_kib() -> u64 {
        status_kib("VmLck:")
    }

    #[test]
    fn key_pages_mode_shows_up_as_locked_memory() {
        let before = vm_lck_kib();
        let key = LockedKey::generate(KeyAlgorithm::EcP256, LockMode::KeyPages).unwrap();
        assert!(key.is_locked());
        assert!(vm_lck_kib() > before, "VmLck did not grow");
        drop(key);
    }

    #[test]
    fn disabled_mode_locks_nothing() {
        let key = LockedKey::generate(KeyAlgorithm::EcP256, LockMode::Disabled).unwrap();
        assert!(!key.is_locked());
    }

    #[test]
    fn hardened_process_is_not_dumpable_and_has_no_core_limit() {
        harden_process(LockMode::KeyPages).unwrap();
        assert!(!process_is_dumpable());
        let mut lim = libc::rlimit {
            rlim_cur: 1,
            rlim_max: 1,
        };
        // SAFETY: valid out-pointer.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut lim) }, 0);
        assert_eq!((lim.rlim_cur, lim.rlim_max), (0, 0));
    }

    fn resident_bytes() -> u64 {
        status_kib("VmRSS:") * 1024
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_memory_in_the_middle_of_the_heap_goes_back_to_the_os() {
        const MIB: u64 = 1024 * 1024;
        // In a thread of its own (an arena of its own): 200 MB of small blocks, then all freed
        // but one in 64, which pins the heap's top, so `free` alone returns nothing.
        let (kept, before, after, released) = std::thread::spawn(|| {
            let blocks: Vec<Vec<u8>> = (0..200_000_u32).map(|i| vec![i as u8; 1000]).collect();
            let mut kept = Vec::with_capacity(blocks.len() / 64 + 1);
            for (i, block) in blocks.into_iter().enumerate() {
                if i % 64 == 0 {
                    kept.push(block);
                }
            }
            let before = resident_bytes();
            let released = release_free_heap();
            (kept, before, resident_bytes(), released)
        })
        .join()
        .unwrap();
        assert!(released, "malloc_trim released nothing");
        assert!(
            after + 100 * MIB < before,
            "resident {} MiB before the trim, {} MiB after",
            before / MIB,
            after / MIB
        );
        assert!(
            kept.iter()
                .enumerate()
                .all(|(i, b)| b[999] == (i * 64) as u8)
        );
    }

    #[test]
    fn memory_freed_through_the_process_allocator_goes_back_to_the_os() {
        use std::alloc::{GlobalAlloc, Layout};
        const MIB: u64 = 1024 * 1024;
        assert!(prepare_allocator(), "THP still on");
        let layout = Layout::from_size_align(1000, 8).unwrap();
        // 200 MB of small blocks through the allocator `firefly` installs, in a thread of its
        // own (a mimalloc heap of its own); all but the first thousand freed.
        let (before, after) = std::thread::spawn(move || {
            let blocks: Vec<*mut u8> = (0..200_000_u32)
                .map(|i| {
                    // SAFETY: `layout` has a non-zero size; the block is written within it.
                    let p = unsafe { Allocator.alloc(layout) };
                    assert!(!p.is_null());
                    // SAFETY: `p` points to 1000 writable bytes.
                    unsafe { p.write_bytes(i as u8, 1000) };
                    p
                })
                .collect();
            for p in &blocks[1000..] {
                // SAFETY: allocated above with the same allocator and layout, freed once.
                unsafe { Allocator.dealloc(*p, layout) };
            }
            let before = resident_bytes();
            release_free_heap();
            let after = resident_bytes();
            for p in &blocks[..1000] {
                // SAFETY: as above.
                unsafe { Allocator.dealloc(*p, layout) };
            }
            (before, after)
        })
        .join()
        .unwrap();
        assert!(
            after + 100 * MIB < before,
            "resident {} MiB before the release, {} MiB after",
            before / MIB,
            after / MIB
        );
    }

    /// mimalloc's `mi_option_arena_eager_commit` (its position in `mi_option_e`, mimalloc.h of
    /// the pinned libmimalloc-sys).
    const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

    #[test]
    fn lock_mode_all_locks_pages_as_they_are_touched_so_reserved_arenas_stay_out_of_memory() {
        use std::alloc::{GlobalAlloc, Layout};
        const MIB: u64 = 1024 * 1024;
        // mimalloc's default where the kernel overcommits: each arena (1 GiB of address space)
        // committed when it is reserved. Locking every mapped page would make it all resident.
        // SAFETY: mi_option_set stores an integer in mimalloc's option table (this test runs in
        // a process of its own under nextest).
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 1) };
        harden_process(LockMode::All).expect("mlockall (CAP_IPC_LOCK or a large ulimit -l)");
        let layout = Layout::from_size_align(1000, 8).unwrap();
        // The first allocation through mimalloc reserves (and commits) its first arena.
        let resident = std::thread::spawn(move || {
            // SAFETY: `layout` has a non-zero size; the block is written within it and freed
            // once with the same allocator and layout.
            unsafe {
                let p = Allocator.alloc(layout);
                assert!(!p.is_null());
                p.write_bytes(7, 1000);
                let r = resident_bytes();
                Allocator.dealloc(p, layout);
                r
            }
        })
        .join()
        .unwrap();
        assert!(
            resident < 256 * MIB,
            "resident {} MiB after one allocation under lockMode all",
            resident / MIB
        );
        assert!(vm_lck_kib() > 0, "the touched pages are locked");
    }

    #[test]
    fn wipe_leaves_only_zeros() {
        let mut bytes = LockedBytes::copy_of(&[0xA5; 100], LockMode::KeyPages).unwrap();
        assert!(bytes.as_slice().iter().all(|b| *b == 0xA5));
        bytes.wipe();
        assert!(bytes.as_slice().iter().all(|b| *b == 0));
    }

    #[test]
    fn debug_prints_a_placeholder_not_the_key() {
        let key = LockedKey::generate(KeyAlgorithm::EcP256, LockMode::Disabled).unwrap();
        let text = format!("{key:?}");
        assert!(text.contains("redacted"), "{text}");
        let secret_hex: String = key
            .secret_for_tests()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!text.contains(&secret_hex[secret_hex.len() - 16..]));
    }

    #[test]
    fn every_supported_algorithm_signs_a_verifiable_certificate() {
        for alg in [
            KeyAlgorithm::EcP256,
            KeyAlgorithm::EcP384,
            KeyAlgorithm::EcEd25519,
            KeyAlgorithm::Rsa2048,
        ] {
            let key = LockedKey::generate(alg, LockMode::KeyPages).unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
            let cert = params.self_signed(&key).unwrap();
            let (_, parsed) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
            parsed
                .verify_signature(None)
                .unwrap_or_else(|e| panic!("{alg}: {e}"));
            assert_eq!(
                parsed.public_key().raw,
                key.public_key_spki_der().as_slice(),
                "{alg}"
            );
            assert!(!key.sign(b"m").unwrap().is_empty());
        }
    }

    #[test]
    fn p521_is_refused_by_name() {
        let err = LockedKey::generate(KeyAlgorithm::EcP521, LockMode::KeyPages).unwrap_err();
        assert!(err.to_string().contains("EC_P521"), "{err}");
    }
}
