//! What a subscription's selection set asks for, read once when it subscribes, so each update
//! is written straight to JSON instead of being resolved field by field per subscriber.
//!
//! The selection comes from async-graphql after it validated the document against the role's
//! schema, with fragments flattened and aliases kept; `@skip`/`@include` are applied here.
//! Fields that share a response key are merged, as GraphQL's field merging requires. The
//! projection is part of what makes two subscriptions identical: same query, same shape of
//! answer, one computation and one serialised payload.

use async_graphql::SelectionField;

use super::super::errors::{Code, error};
use super::super::view::TableView;
use crate::aggregate::AggFn;

/// An object's selected fields: `(response key, what it reads)`.
pub type Fields<T> = Vec<(String, T)>;

/// A field of a row object.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RowField {
    Column(usize),
    Typename(String),
}

/// A field of an aggregate group.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GroupField {
    Count,
    /// `key { … }`: group-by columns.
    Key(Fields<RowField>),
    /// `sum { … }` and the like: one measure per column.
    Measure(AggFn, Fields<RowField>),
    Typename(String),
}

/// A field of an incremental update (`…Patches`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UpdateField {
    Seq,
    AsOf(Fields<AsOfField>),
    Reset(Fields<RowField>),
    Patch(Fields<PatchField>),
    Typename(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AsOfField {
    Position,
    CommitTs,
    Typename(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PatchField {
    Upserts(Fields<UpsertField>),
    RemovedKeys(Fields<RowField>),
    Typename(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UpsertField {
    Index,
    Row(Fields<RowField>),
    Typename(String),
}

type Result<T> = std::result::Result<T, async_graphql::Error>;

/// The selected fields of `field`, directives applied, merged by response key.
fn selected<'a>(field: &SelectionField<'a>) -> Result<Vec<(String, Vec<SelectionField<'a>>)>> {
    let mut out: Vec<(String, Vec<SelectionField<'a>>)> = Vec::new();
    for child in field.selection_set() {
        if !included(&child)? {
            continue;
        }
        let key = child.alias().unwrap_or(child.name()).to_string();
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, same)) => same.push(child),
            None => out.push((key, vec![child])),
        }
    }
    Ok(out)
}

/// `@skip(if: …)` and `@include(if: …)`, with variables already substituted.
fn included(field: &SelectionField<'_>) -> Result<bool> {
    for directive in field.directives()? {
        let condition = directive.arguments.iter().find(|(n, _)| n.node.as_str() == "if").map(|(_, v)| &v.node);
        let value = matches!(condition, Some(async_graphql::Value::Boolean(true)));
        match directive.name.node.as_str() {
            "skip" if value => return Ok(false),
            "include" if !value => return Ok(false),
            _ => {}
        }
    }
    Ok(true)
}

/// Builds the fields of one object from merged selections: `read(name, selections)` reads a
/// field by its schema name.
pub(in crate::api::graphql) fn object<T>(
    field: &SelectionField<'_>,
    mut read: impl FnMut(&str, &[SelectionField<'_>]) -> Result<T>,
) -> Result<Fields<T>> {
    selected(field)?.into_iter().map(|(key, same)| Ok((key, read(same[0].name(), &same)?))).collect()
}

/// A pseudo-field merging several selections of one response key (their sub-selections add up).
pub(in crate::api::graphql) fn merged<'a, T>(
    same: &[SelectionField<'a>],
    mut each: impl FnMut(&SelectionField<'a>) -> Result<Fields<T>>,
) -> Result<Fields<T>>
where
    T: PartialEq,
{
    let mut out: Fields<T> = Vec::new();
    for s in same {
        for (k, v) in each(s)? {
            if !out.iter().any(|(key, _)| *key == k) {
                out.push((k, v));
            }
        }
    }
    Ok(out)
}

pub(in crate::api::graphql) fn unexpected(name: &str) -> async_graphql::Error {
    error(Code::Internal, format!("the live path does not know the field `{name}`"))
}

pub fn row(view: &TableView, field: &SelectionField<'_>) -> Result<Fields<RowField>> {
    object(field, |name, _| {
        if name == "__typename" {
            return Ok(RowField::Typename(view.type_name.clone()));
        }
        view.columns
            .iter()
            .find(|c| c.name == name)
            .map(|c| RowField::Column(c.position))
            .ok_or_else(|| unexpected(name))
    })
}

pub(in crate::api::graphql) fn rows_merged(view: &TableView, same: &[SelectionField<'_>]) -> Result<Fields<RowField>> {
    merged(same, |s| row(view, s))
}

/// A key object (`removedKeys { id }`, an aggregate group's `key { status }`).
pub(in crate::api::graphql) fn key_object(
    view: &TableView,
    type_name: String,
    same: &[SelectionField<'_>],
) -> Result<Fields<RowField>> {
    merged(same, |s| {
        object(s, |name, _| {
            if name == "__typename" {
                return Ok(RowField::Typename(type_name.clone()));
            }
            view.columns
                .iter()
                .find(|c| c.name == name)
                .map(|c| RowField::Column(c.position))
                .ok_or_else(|| unexpected(name))
        })
    })
}

pub fn group(view: &TableView, field: &SelectionField<'_>) -> Result<Fields<GroupField>> {
    object(field, |name, same| {
        Ok(match name {
            "__typename" => GroupField::Typename(super::super::types::group_name(view)),
            "count" => GroupField::Count,
            "key" => GroupField::Key(key_object(view, format!("{}GroupKey", view.type_name), same)?),
            other => {
                let f = super::super::aggregates::GROUP_FUNCTIONS
                    .into_iter()
                    .find(|f| f.name() == other)
                    .ok_or_else(|| unexpected(other))?;
                let label = super::super::aggregates::label(f);
                GroupField::Measure(f, key_object(view, format!("{}{label}Fields", view.type_name), same)?)
            }
        })
    })
}

pub fn update(view: &TableView, field: &SelectionField<'_>) -> Result<Fields<UpdateField>> {
    let names = super::schema::Names::of(view);
    object(field, |name, same| {
        Ok(match name {
            "__typename" => UpdateField::Typename(names.update.clone()),
            "seq" => UpdateField::Seq,
            "asOf" => UpdateField::AsOf(merged(same, |s| {
                object(s, |name, _| {
                    Ok(match name {
                        "position" => AsOfField::Position,
                        "commitTs" => AsOfField::CommitTs,
                        "__typename" => AsOfField::Typename(super::schema::AS_OF.into()),
                        other => return Err(unexpected(other)),
                    })
                })
            })?),
            "reset" => UpdateField::Reset(rows_merged(view, same)?),
            "patch" => UpdateField::Patch(merged(same, |s| {
                object(s, |name, same| {
                    Ok(match name {
                        "__typename" => PatchField::Typename(names.patch.clone()),
                        "upserts" => PatchField::Upserts(merged(same, |s| {
                            object(s, |name, same| {
                                Ok(match name {
                                    "__typename" => UpsertField::Typename(names.upsert.clone()),
                                    "index" => UpsertField::Index,
                                    "row" => UpsertField::Row(rows_merged(view, same)?),
                                    other => return Err(unexpected(other)),
                                })
                            })
                        })?),
                        "removedKeys" => PatchField::RemovedKeys(key_object(view, names.key.clone(), same)?),
                        other => return Err(unexpected(other)),
                    })
                })
            })?),
            other => return Err(unexpected(other)),
        })
    })
}
