//! Assembly of the model: each section's builder adds what is wrong with it to one list, so
//! `check` shows every problem at once.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::file::FileConfig;
use super::model::{Config, Upstream};
use super::problems::{Problem, Problems};
use super::{operations, process, route, tls, upstream};

impl Config {
    /// Validate a parsed file into a model, or return every problem found. Each section has its
    /// builder; each adds what is wrong with it to one list, so `check` shows every problem.
    pub fn from_file(file: FileConfig, path: &Path) -> Result<Config, Vec<Problem>> {
        let mut p = Problems::default();
        let server = process::build_server(&mut p, &file);
        let tls = file.server.tls.as_ref().and_then(|t| tls::load(&mut p, t));
        let limits = process::build_limits(&mut p, &file);
        let admin = process::build_admin(&mut p, &file);
        let log = process::build_log(&mut p, &file);
        let upstreams: BTreeMap<String, Arc<Upstream>> = file
            .upstreams
            .iter()
            .filter_map(|(name, u)| upstream::build(&mut p, name, u).map(|u| (name.clone(), Arc::new(u))))
            .collect();
        let routes = route::build_all(&mut p, &file.routes, &file.upstreams, &upstreams);
        let trusted_proxies = process::build_trusted(&mut p, &file);
        let cluster = file.cluster.as_ref().map(|c| process::build_cluster(&mut p, c, path));
        let notify = operations::build_notify(&mut p, &file.notify);
        let telemetry = file.telemetry.as_ref().map(|t| operations::build_telemetry(&mut p, t));
        p.into_result(Config {
            path: path.to_path_buf(),
            server,
            admin,
            log,
            upstreams,
            routes,
            tls,
            limits,
            trusted_proxies,
            cluster,
            notify,
            telemetry,
        })
    }
}
