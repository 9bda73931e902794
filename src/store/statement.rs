//! A statement assembled piece by piece (lists, filters, multi-row INSERTs): its SQL text with `$n` placeholders,
//! numbered in order as values are pushed, and the values they bind, turned into a sqlx query once it is complete.
//! Every value is bound, never written into the SQL.
//!
//! (sqlx's own `QueryBuilder` borrows itself for as long as its bound values live once its database type is a
//! generic parameter, so it cannot be run from code generic over the database.)

use std::borrow::Cow;
use std::fmt::Write;

use sqlx::query::{Query, QueryAs};
use sqlx::{Database, Encode, FromRow, IntoArguments, Type};

/// A value bound to a placeholder.
#[derive(Clone, Debug, PartialEq)]
pub enum Param<'a> {
    Text(Option<Cow<'a, str>>),
    Int(Option<i64>),
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(text: &'a str) -> Self {
        Param::Text(Some(Cow::Borrowed(text)))
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(text: &'a String) -> Self {
        Param::Text(Some(Cow::Borrowed(text)))
    }
}

impl From<String> for Param<'_> {
    fn from(text: String) -> Self {
        Param::Text(Some(Cow::Owned(text)))
    }
}

impl<'a> From<&'a Option<String>> for Param<'a> {
    fn from(text: &'a Option<String>) -> Self {
        Param::Text(text.as_deref().map(Cow::Borrowed))
    }
}

impl From<i64> for Param<'_> {
    fn from(number: i64) -> Self {
        Param::Int(Some(number))
    }
}

impl From<Option<i64>> for Param<'_> {
    fn from(number: Option<i64>) -> Self {
        Param::Int(number)
    }
}

/// A statement being assembled: SQL text and the values of its placeholders, in order.
#[derive(Clone, Debug, Default)]
pub struct Statement<'a> {
    sql: String,
    params: Vec<Param<'a>>,
}

impl<'a> Statement<'a> {
    pub fn new(sql: &str) -> Self {
        Self { sql: sql.to_string(), params: Vec::new() }
    }

    /// Its SQL text.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Adds SQL text.
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Adds a placeholder binding `value`.
    pub fn push_bind(&mut self, value: impl Into<Param<'a>>) -> &mut Self {
        self.params.push(value.into());
        // Writing to a String cannot fail.
        let _ = write!(self.sql, "${}", self.params.len());
        self
    }

    /// Adds `(v1, v2, …)`: a placeholder for each of `values`.
    pub fn push_list<T: Into<Param<'a>>>(&mut self, values: impl IntoIterator<Item = T>) -> &mut Self {
        self.push("(");
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push_bind(value);
        }
        self.push(")")
    }

    /// Adds `VALUES (…), (…)`: one tuple per row, its values given by `bind_row`.
    pub fn push_values<T>(&mut self, rows: impl IntoIterator<Item = T>, mut bind_row: impl FnMut(T) -> Vec<Param<'a>>) {
        self.push("VALUES ");
        for (i, row) in rows.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push_list(bind_row(row));
        }
    }

    /// The statement as a query of database `DB`.
    pub fn query<DB>(&self) -> Query<'_, DB, DB::Arguments<'_>>
    where
        DB: Database,
        for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
        for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
        for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    {
        let mut query = sqlx::query(&self.sql);
        for param in &self.params {
            query = match param {
                Param::Text(text) => query.bind(text.as_deref()),
                Param::Int(number) => query.bind(*number),
            };
        }
        query
    }

    /// The statement as a query of database `DB` whose rows are read as `O`.
    pub fn query_as<DB, O>(&self) -> QueryAs<'_, DB, O, DB::Arguments<'_>>
    where
        DB: Database,
        O: for<'r> FromRow<'r, DB::Row>,
        for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
        for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
        for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    {
        let mut query = sqlx::query_as(&self.sql);
        for param in &self.params {
            query = match param {
                Param::Text(text) => query.bind(text.as_deref()),
                Param::Int(number) => query.bind(*number),
            };
        }
        query
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        let mut statement = Statement::new("INSERT INTO t (a, b) ");
        statement.push_values([("x", 1), ("y", 2)], |(a, b)| vec![a.into(), b.into()]);
        statement.push(" AND id IN ").push_list(["p", "q"]);
        assert_eq!(statement.sql, "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) AND id IN ($5, $6)");
        assert_eq!(statement.params.len(), 6);
        assert_eq!(statement.params[1], Param::Int(Some(1)));
    }
}
