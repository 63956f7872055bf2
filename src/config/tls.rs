//! The proxy's TLS certificate: loaded and checked with the rest of the config (so `check` and a
//! reload refuse a bad pair), and served through a resolver that reloads swap.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, CryptoProvider, ResolvesServerCert};

use super::file::TlsSection;
use super::model::Tls;
use super::problems::{quote, Problems};

/// Read and check `[server.tls]`: the files exist, hold PEM, and the key matches the leaf.
pub(super) fn load(p: &mut Problems, t: &TlsSection) -> Option<Tls> {
    pingora::tls::install_default_crypto_provider();
    let pair = match pingora::tls::load_certs_and_key_files(&t.cert, &t.key) {
        Ok(Some(pair)) => pair,
        Ok(None) => {
            p.add(
                "server.tls.cert",
                quote(&t.cert),
                format!("with key {:?}: need a PEM certificate chain and a PEM private key", t.key),
            );
            return None;
        }
        Err(e) => {
            p.add(
                "server.tls",
                format!("{{ cert = {:?}, key = {:?} }}", t.cert, t.key),
                format!("cannot be read: {e}"),
            );
            return None;
        }
    };
    let provider = CryptoProvider::get_default()?;
    let (certs, key) = pair;
    let certs = certs.into_iter().map(|c| c.into_owned()).collect();
    match CertifiedKey::from_der(certs, key.clone_key(), provider) {
        Ok(certified) => {
            Some(Tls { cert: PathBuf::from(&t.cert), key: PathBuf::from(&t.key), certified: Arc::new(certified) })
        }
        Err(e) => {
            p.add("server.tls.key", quote(&t.key), format!("does not fit the certificate in {:?}: {e}", t.cert));
            None
        }
    }
}

/// Hands every TLS handshake the current certificate; a reload stores a new one.
#[derive(Debug)]
pub struct CertResolver {
    current: ArcSwap<CertifiedKey>,
}

impl CertResolver {
    pub fn new(first: Arc<CertifiedKey>) -> Arc<Self> {
        Arc::new(CertResolver { current: ArcSwap::new(first) })
    }

    pub fn store(&self, next: Arc<CertifiedKey>) {
        self.current.store(next);
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}
