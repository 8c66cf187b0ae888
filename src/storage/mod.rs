//! Storage owned by the daemon: the segment catalog, the gap ledger,
//! retention, legal holds and disk pressure (and, later, the backup queue).
//! Empty until that work lands; the place is kept so that it joins the
//! layer of the domain modules and the loop only feeds it.
