//! What may be read from a row of either engine: `Row`, and `Column` for each type.

use rusqlite::types::ValueRef;
use tokio_postgres::types::Type;

use super::Error;

/// One row of a result.
pub enum Row<'a> {
    Lite(&'a rusqlite::Row<'a>),
    Pg(&'a tokio_postgres::Row),
}

impl Row<'_> {
    /// Column `index` (from 0) as a `T`.
    pub fn get<T: Column>(&self, index: usize) -> Result<T, Error> {
        match self {
            Row::Lite(r) => {
                T::from_lite(r.get_ref(index)?).map_err(|message| Error::Column { index, message })
            }
            Row::Pg(r) => T::from_pg(r, index).map_err(|message| Error::Column { index, message }),
        }
    }
}

/// A type a column may be read as, on either backend.
pub trait Column: Sized {
    fn from_lite(value: ValueRef<'_>) -> Result<Self, String>;
    fn from_pg(row: &tokio_postgres::Row, index: usize) -> Result<Self, String>;
}

fn pg_get<'r, T: tokio_postgres::types::FromSql<'r>>(
    row: &'r tokio_postgres::Row,
    index: usize,
) -> Result<T, String> {
    row.try_get(index).map_err(|e| e.to_string())
}

/// An integer column of any width (or a boolean) as an `i64`; `None` when NULL.
fn pg_int(row: &tokio_postgres::Row, index: usize) -> Result<Option<i64>, String> {
    let ty = row
        .columns()
        .get(index)
        .map(|c| c.type_().clone())
        .ok_or_else(|| format!("no column {index}"))?;
    Ok(match ty {
        Type::INT8 => pg_get::<Option<i64>>(row, index)?,
        Type::INT4 => pg_get::<Option<i32>>(row, index)?.map(i64::from),
        Type::INT2 => pg_get::<Option<i16>>(row, index)?.map(i64::from),
        Type::BOOL => pg_get::<Option<bool>>(row, index)?.map(i64::from),
        other => return Err(format!("a {other} column is not an integer")),
    })
}

impl Column for Option<i64> {
    fn from_lite(value: ValueRef<'_>) -> Result<Self, String> {
        match value {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(n) => Ok(Some(n)),
            other => Err(format!("a {} value is not an integer", other.data_type())),
        }
    }
    fn from_pg(row: &tokio_postgres::Row, index: usize) -> Result<Self, String> {
        pg_int(row, index)
    }
}

impl Column for i64 {
    fn from_lite(value: ValueRef<'_>) -> Result<Self, String> {
        Option::<i64>::from_lite(value)?.ok_or_else(|| "NULL is not an integer".into())
    }
    fn from_pg(row: &tokio_postgres::Row, index: usize) -> Result<Self, String> {
        pg_int(row, index)?.ok_or_else(|| "NULL is not an integer".into())
    }
}

macro_rules! narrow_int_column {
    ($($t:ty),*) => {$(
        impl Column for $t {
            fn from_lite(value: ValueRef<'_>) -> Result<Self, String> {
                let n = i64::from_lite(value)?;
                <$t>::try_from(n).map_err(|_| format!("{n} is out of range"))
            }
            fn from_pg(row: &tokio_postgres::Row, index: usize) -> Result<Self, String> {
                let n = i64::from_pg(row, index)?;
                <$t>::try_from(n).map_err(|_| format!("{n} is out of range"))
            }
        }
        impl Column for Option<$t> {
            fn from_lite(value: ValueRef<'_>) -> Result<Self, String> {
                Option::<i64>::from_lite(value)?
                    .map(|n| <$t>::try_from(n).map_err(|_| format!("{n} is out of range")))
                    .transpose()
            }
            fn from_pg(row: &tokio_postgres::Row, index: usize) -> Result<Self, String> {
                Option::<i64>::from_pg(row, index)?
                    .map(|n| <$t>::try_from(n).map_err(|_| format!("{n} is out of range")))
                    .transpose()
            }
        }
    )*};
}
narrow_int_column!(u32, i32, u64);

impl Column for bool {
    fn from_lite(value: ValueRef<'_>) -> Result<Self, String> {
        i64::from_lite(value).map(|n| n != 0)
    }
    fn from_pg(row: &tokio_postgres::Row, index: usize) -> Result<Self, String> {
        i64::from_pg(row, index).map(|n| n != 0)
    }
}

impl Column for Option<f64> {
    fn from_lite(value: ValueRef<'_>) -> Result<Self, String> {
        match value {
            ValueRef::Null => Ok(None),
            ValueRef::Real(x) => Ok(Some(x)),
            ValueRef::Integer(n) => Ok(Some(n as f64)),
            other => Err(format!("a {} value is not a number", other.data_type())),
        }
    }
    fn from_pg(row: &tokio_postgres::Row, index: usize) -> Result<Self, String> {
        match row.columns().get(index).map(|c| c.type_().clone()) {
            Some(Type::FLOAT8) => pg_get::<Option<f64>>(row, index),
            Some(Type::FLOAT4) => Ok(pg_get::<Option<f32>>(row, index)?.map(f64::from)),
            _ => Ok(pg_int(row, index)?.map(|n| n as f64)),
        }
    }
}

impl Column for f64 {
    fn from_lite(value: ValueRef<'_>) -> Result<Self, String> {
        Option::<f64>::from_lite(value)?.ok_or_else(|| "NULL is not a number".into())
    }
    fn from_pg(row: &tokio_postgres::Row, index: usize) -> Result<Self, String> {
        Option::<f64>::from_pg(row, index)?.ok_or_else(|| "NULL is not a number".into())
    }
}

impl Column for Option<String> {
    fn from_lite(value: ValueRef<'_>) -> Result<Self, String> {
        match value {
            ValueRef::Null => Ok(None),
            ValueRef::Text(t) => String::from_utf8(t.to_vec())
                .map(Some)
                .map_err(|_| "text is not UTF-8".into()),
            other => Err(format!("a {} value is not text", other.data_type())),
        }
    }
    fn from_pg(row: &tokio_postgres::Row, index: usize) -> Result<Self, String> {
        pg_get(row, index)
    }
}

impl Column for String {
    fn from_lite(value: ValueRef<'_>) -> Result<Self, String> {
        Option::<String>::from_lite(value)?.ok_or_else(|| "NULL is not text".into())
    }
    fn from_pg(row: &tokio_postgres::Row, index: usize) -> Result<Self, String> {
        Option::<String>::from_pg(row, index)?.ok_or_else(|| "NULL is not text".into())
    }
}

impl Column for Option<Vec<u8>> {
    fn from_lite(value: ValueRef<'_>) -> Result<Self, String> {
        match value {
            ValueRef::Null => Ok(None),
            ValueRef::Blob(b) | ValueRef::Text(b) => Ok(Some(b.to_vec())),
            other => Err(format!("a {} value is not bytes", other.data_type())),
        }
    }
    fn from_pg(row: &tokio_postgres::Row, index: usize) -> Result<Self, String> {
        pg_get(row, index)
    }
}

impl Column for Vec<u8> {
    fn from_lite(value: ValueRef<'_>) -> Result<Self, String> {
        Option::<Vec<u8>>::from_lite(value)?.ok_or_else(|| "NULL is not bytes".into())
    }
    fn from_pg(row: &tokio_postgres::Row, index: usize) -> Result<Self, String> {
        Option::<Vec<u8>>::from_pg(row, index)?.ok_or_else(|| "NULL is not bytes".into())
    }
}
