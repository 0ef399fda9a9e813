//! [`Route`]: the route a request matched, and its dense [`RouteId`].

use std::fmt;
use std::hash::Hasher;
use std::sync::Arc;

/// The dense id of a route: `0` is the default route for unmatched requests,
/// declared routes follow from `1` in the order they were declared.
///
/// Layers keep their per-route settings in vectors indexed by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteId(pub(crate) u32);

impl RouteId {
    /// The id of the default route.
    pub const DEFAULT: RouteId = RouteId(0);

    /// The id as an index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// The shape of a [`Routes`](super::routes::Routes) table: a hash of its route names in id order.
/// Settings resolved against one table apply to routes of any table built
/// from the same declarations (same names, same ids), never to another's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TableId(u64);

impl TableId {
    pub(crate) fn of<'a>(names: impl Iterator<Item = &'a str>) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        for name in names {
            hasher.write(name.as_bytes());
            hasher.write_u8(0xff);
        }
        Self(hasher.finish())
    }
}

/// The route a request matched, as [`RouteLayer`](crate::route::RouteLayer) inserts
/// it into the request's extensions. Cheap to clone.
///
/// Its name is its pattern (`POST /v1/items/{id}`), so `/v1/items/1` and
/// `/v1/items/2` share every per-route setting.
#[derive(Clone)]
pub struct Route {
    info: Arc<RouteInfo>,
}

struct RouteInfo {
    id: RouteId,
    table: TableId,
    /// Keyed hash of the name: the route's part of a rate-limit bucket key.
    hash: u64,
    name: Box<str>,
    public: bool,
}

impl Route {
    /// The name of the default route.
    pub const DEFAULT_NAME: &'static str = "default";

    /// The dense id.
    pub fn id(&self) -> RouteId {
        self.info.id
    }

    /// The route's name: its pattern, `METHOD /path`.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// Whether the route is public: no API key is needed to call it.
    pub fn is_public(&self) -> bool {
        self.info.public
    }

    pub(crate) fn table(&self) -> TableId {
        self.info.table
    }

    pub(crate) fn hash(&self) -> u64 {
        self.info.hash
    }

    /// Whether this is the default route for unmatched requests.
    pub fn is_default(&self) -> bool {
        self.info.id == RouteId::DEFAULT
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("id", &self.info.id.0)
            .field("name", &self.name())
            .field("public", &self.info.public)
            .finish()
    }
}

/// Makes the route of `name`, the `id`th of `table`.
pub(crate) fn make_route(table: TableId, id: RouteId, name: Box<str>, public: bool) -> Route {
    Route {
        info: Arc::new(RouteInfo {
            id,
            table,
            hash: crate::hash::keyed(crate::hash::ROUTE, name.as_bytes()),
            name,
            public,
        }),
    }
}
