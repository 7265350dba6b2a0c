//! Following next links: every page of a listing, once, and never forever.
//!
//! Why it exists: every provider pages its lists the same way — a page of items and a link
//! to the next page — and every connector must guard the same loop against a broken or
//! hostile server: a next link followed before, a page whose items repeat an earlier page's
//! under a new link, a listing that goes on past what the tenant can hold. [`Trail`] is that
//! guard, and [`collect_lists`] the one loop that reads several listings at once to their
//! last page, whatever the request type (a plain GET, an item of a batch request).
//!
//! Microsoft Graph, for one, returns a next link per page "until there are no more pages of
//! results to retrieve" (<https://learn.microsoft.com/graph/paging>), each with the token of the
//! next page and the next items: a link or a page of items seen twice is a loop.

use serde_json::Value;

use crate::ocsf::{text_hash, values_hash};

/// Most pages a listing follows when the caller gives no cap of its own ([`Trail::capped`]).
pub const DEFAULT_MAX_PAGES: u64 = 50_000;

/// Why a listing was stopped.
#[derive(Clone, Debug, PartialEq)]
pub enum Loop {
    /// The next link was followed before (the link's first line).
    LinkRepeated(String),
    /// Page `page` repeats the items of an earlier page under a new link.
    ItemsRepeated {
        /// The page number.
        page: u64,
        /// The link's first line.
        link: String,
    },
    /// The listing went past its page cap.
    TooManyPages(u64),
}

impl std::fmt::Display for Loop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Loop::LinkRepeated(link) => write!(
                f,
                "the server sent a next link this listing already followed ({link}): a loop, not followed again"
            ),
            Loop::ItemsRepeated { page, link } => write!(
                f,
                "page {page} of this listing repeats the items of an earlier page under a new next link ({link}): a loop, not followed"
            ),
            Loop::TooManyPages(max) => write!(
                f,
                "this listing goes on past {max} pages, more than this tenant can hold (a broken or hostile server): not followed further"
            ),
        }
    }
}

/// What one listing has followed: its links, the content of its pages, and how many pages.
///
/// Links and contents are kept as FNV-1a 128 hashes ([`text_hash`], [`values_hash`] of the
/// items' canonical JSON): 16 bytes a page however long the links, so the page cap bounds
/// this memory too. Empty pages are not compared (a provider may send several on the way to
/// its last link); the page cap bounds them.
#[derive(Debug)]
pub struct Trail {
    seen: std::collections::HashSet<u128>,
    contents: std::collections::HashSet<u128>,
    pages: u64,
    max_pages: u64,
}

impl Default for Trail {
    fn default() -> Self {
        Trail {
            seen: Default::default(),
            contents: Default::default(),
            pages: 0,
            max_pages: DEFAULT_MAX_PAGES,
        }
    }
}

impl Trail {
    /// A trail that starts at `url` (the listing's first request).
    pub fn starting_at(url: &str) -> Trail {
        let mut t = Trail::default();
        t.seen.insert(text_hash(url));
        t
    }

    /// The same trail with at most `max_pages` pages (at least one).
    pub fn capped(mut self, max_pages: u64) -> Trail {
        self.max_pages = max_pages.max(1);
        self
    }

    /// Pages followed so far.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// Checks a page that brought the next link `link` before the link is followed: that
    /// this listing has not followed it already, that the page's `items` do not repeat an
    /// earlier page's, and that the listing stays under its page cap. (Whether the link may
    /// be followed at all — its origin, its form — is the connector's to check first.)
    pub fn step(&mut self, items: &[Value], link: &str) -> Result<(), Loop> {
        self.pages = self.pages.saturating_add(1);
        if !self.seen.insert(text_hash(link)) {
            return Err(Loop::LinkRepeated(first_line(link)));
        }
        if !items.is_empty() && !self.contents.insert(values_hash(items)) {
            return Err(Loop::ItemsRepeated {
                page: self.pages,
                link: first_line(link),
            });
        }
        if self.pages >= self.max_pages {
            return Err(Loop::TooManyPages(self.max_pages));
        }
        Ok(())
    }
}

/// One page of a listing: its items and the link to the next page, if any.
#[derive(Clone, Debug, PartialEq)]
pub struct Listed {
    /// The page's items.
    pub items: Vec<Value>,
    /// The next page's URL; None on the last page.
    pub next_link: Option<String>,
}

impl Listed {
    /// Splits a JSON page `{"<items>": [...], "<next>": "url"}`: the items must be an array,
    /// the next link a string when present (null or absent: the last page). Anything else is
    /// an error of the listing, never "no more pages", which would drop the rest in silence.
    pub fn parse(mut body: Value, items: &str, next: &str) -> Result<Listed, String> {
        let Some(map) = body.as_object_mut() else {
            return Err("a page of the listing is not a JSON object".into());
        };
        let items = match map.remove(items) {
            Some(Value::Array(a)) => a,
            _ => return Err(format!("a page of the listing has no '{items}' array")),
        };
        let next_link = match map.remove(next) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                return Err(format!(
                    "a page of the listing has a '{next}' that is not a link"
                ))
            }
        };
        Ok(Listed { items, next_link })
    }
}

/// Reads several listings to their last page at once: each round fetches the next page of
/// every listing still open in one call of `fetch` (so a connector can send them together),
/// checks each next link with `step` (the connector's link rules, then [`Trail::step`]), and
/// follows it with `follow` (the request for a link, keeping the start request's headers).
/// Returns, per start request, every item of every page, or the first error.
pub fn collect_lists<R: Clone, E>(
    starts: Vec<R>,
    url: impl Fn(&R) -> &str,
    follow: impl Fn(&R, String) -> R,
    mut fetch: impl FnMut(&[R]) -> Vec<Result<Listed, E>>,
    mut step: impl FnMut(&mut Trail, &[Value], &str) -> Result<(), E>,
) -> Vec<Result<Vec<Value>, E>> {
    let mut items: Vec<Result<Vec<Value>, E>> = starts.iter().map(|_| Ok(Vec::new())).collect();
    let mut trails: Vec<Trail> = starts.iter().map(|r| Trail::starting_at(url(r))).collect();
    let mut pending: Vec<(usize, R)> = starts.into_iter().enumerate().collect();
    while !pending.is_empty() {
        let reqs: Vec<R> = pending.iter().map(|(_, r)| r.clone()).collect();
        let results = fetch(&reqs);
        let mut next = Vec::new();
        for ((i, r), page) in pending.into_iter().zip(results) {
            let page = page.and_then(|p| match &p.next_link {
                Some(link) => step(&mut trails[i], &p.items, link).map(|()| p),
                None => Ok(p),
            });
            match (page, &mut items[i]) {
                (Ok(p), Ok(acc)) => {
                    acc.extend(p.items);
                    if let Some(link) = p.next_link {
                        next.push((i, follow(&r, link)));
                    }
                }
                (Err(e), slot) => *slot = Err(e),
                (Ok(_), Err(_)) => {}
            }
        }
        pending = next;
    }
    items
}

/// The first line of `s`, trimmed, cut at 300 characters (with `…`): how a link or a
/// provider's message appears in an error line.
pub fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("").trim();
    let mut out: String = line.chars().take(300).collect();
    if line.chars().count() > 300 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_link_followed_before_stops_the_listing() {
        let mut t = Trail::starting_at("https://api.test/users");
        assert_eq!(t.step(&[json!(1)], "https://api.test/users?page=2"), Ok(()));
        assert_eq!(
            t.step(&[json!(2)], "https://api.test/users"),
            Err(Loop::LinkRepeated("https://api.test/users".into())),
            "the first request's own URL counts as followed"
        );
        let e = t
            .step(&[json!(3)], "https://api.test/users?page=2")
            .unwrap_err();
        assert!(e.to_string().contains("already followed"), "{e}");
    }

    #[test]
    fn a_page_repeating_earlier_items_under_a_new_link_stops_the_listing() {
        let mut t = Trail::default();
        let page = [json!({"id": "a"}), json!({"id": "b"})];
        assert_eq!(t.step(&page, "https://api.test/p?token=1"), Ok(()));
        // Same items, keys in another order: the same canonical content.
        let again = [json!({"id": "a", "n": 1}), json!({"n": 1, "id": "a"})];
        assert_eq!(t.step(&again, "https://api.test/p?token=2"), Ok(()));
        let again = [json!({"n": 1, "id": "a"}), json!({"id": "a", "n": 1})];
        assert_eq!(
            t.step(&again, "https://api.test/p?token=3"),
            Err(Loop::ItemsRepeated {
                page: 3,
                link: "https://api.test/p?token=3".into()
            })
        );
        // Empty pages are not content: several may come on the way to the end.
        let mut t = Trail::default();
        for i in 0..5 {
            assert_eq!(
                t.step(&[], &format!("https://api.test/p?token={i}")),
                Ok(())
            );
        }
    }

    #[test]
    fn a_listing_stops_at_its_page_cap() {
        let mut t = Trail::default().capped(3);
        assert_eq!(t.step(&[json!(1)], "l1"), Ok(()));
        assert_eq!(t.step(&[json!(2)], "l2"), Ok(()));
        assert_eq!(t.step(&[json!(3)], "l3"), Err(Loop::TooManyPages(3)));
        assert_eq!(t.pages(), 3);
        assert_eq!(
            Trail::default().capped(0).step(&[], "x"),
            Err(Loop::TooManyPages(1))
        );
    }

    #[test]
    fn collect_lists_reads_every_listing_to_its_end_in_rounds_and_keeps_errors_apart() {
        // Listing "a" has 3 pages, "b" one, "c" loops on its own first URL.
        let mut rounds = Vec::new();
        let out = collect_lists(
            vec!["a".to_string(), "b".to_string(), "c".to_string()],
            |r| r.as_str(),
            |_, link| link,
            |reqs: &[String]| {
                rounds.push(reqs.to_vec());
                reqs.iter()
                    .map(|r| {
                        let (items, next) = match r.as_str() {
                            "a" => (vec![json!(1)], Some("a2")),
                            "a2" => (vec![json!(2)], Some("a3")),
                            "a3" => (vec![json!(3)], None),
                            "b" => (vec![json!("b")], None),
                            "c" => (vec![json!("c")], Some("c")),
                            other => panic!("unexpected {other}"),
                        };
                        Ok::<_, String>(Listed {
                            items,
                            next_link: next.map(str::to_string),
                        })
                    })
                    .collect()
            },
            |trail, items, link| trail.step(items, link).map_err(|e| e.to_string()),
        );
        assert_eq!(out[0], Ok(vec![json!(1), json!(2), json!(3)]));
        assert_eq!(out[1], Ok(vec![json!("b")]));
        assert!(out[2].as_ref().unwrap_err().contains("already followed"));
        assert_eq!(rounds, vec![vec!["a", "b", "c"], vec!["a2"], vec!["a3"]]);
    }

    #[test]
    fn a_page_is_items_and_an_optional_next_link_or_an_error() {
        let p = Listed::parse(
            json!({"users": [1, 2], "next": "u?page=2"}),
            "users",
            "next",
        );
        assert_eq!(
            p,
            Ok(Listed {
                items: vec![json!(1), json!(2)],
                next_link: Some("u?page=2".into())
            })
        );
        let last = Listed::parse(json!({"users": [], "next": null}), "users", "next").unwrap();
        assert_eq!(last.next_link, None);
        assert!(Listed::parse(json!({"users": {}}), "users", "next").is_err());
        assert!(Listed::parse(json!({"users": [], "next": 2}), "users", "next").is_err());
        assert!(Listed::parse(json!([1]), "users", "next").is_err());
    }

    #[test]
    fn first_line_cuts_long_and_multi_line_text() {
        assert_eq!(first_line("  one\ntwo"), "one");
        let long = "x".repeat(400);
        assert_eq!(first_line(&long).chars().count(), 301);
    }
}
