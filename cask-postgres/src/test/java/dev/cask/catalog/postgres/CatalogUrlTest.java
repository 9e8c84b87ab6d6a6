package dev.cask.catalog.postgres;

import dev.cask.common.CaskException;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Catalog URLs: the forms users write, what the driver gets, and that a password is never shown. */
class CatalogUrlTest {
    private static final Map<String, String> NO_ENV = Map.of();

    @Test
    void aLibpqUrlSplitsIntoDriverUrlUserAndPassword() {
        CatalogUrl u = CatalogUrl.parse("postgresql://cask:s%40cret+x@db.example:6543/catalog?currentSchema=prod&sslmode=require", NO_ENV);
        assertEquals("cask", u.user());
        assertEquals("s@cret+x", u.password());
        assertEquals("db.example:6543", u.hosts());
        assertEquals("catalog", u.database());
        assertEquals("jdbc:postgresql://db.example:6543/catalog?currentSchema=prod&sslmode=require", u.jdbcUrl());
        assertEquals("postgresql://cask@db.example:6543/catalog?currentSchema=prod&sslmode=require", u.display());
        assertEquals(u.display(), u.toString());
    }

    @Test
    void jdbcAndShortFormsAndQueryCredentialsAreAccepted() {
        CatalogUrl j = CatalogUrl.parse("jdbc:postgresql://h1:5432,h2:5433/cat?user=u&password=p%26q&ApplicationName=x", NO_ENV);
        assertEquals("u", j.user());
        assertEquals("p&q", j.password());
        assertEquals("h1:5432,h2:5433", j.hosts());
        assertEquals(Map.of("ApplicationName", "x"), j.parameters());
        assertEquals("postgresql://u@h1:5432,h2:5433/cat?ApplicationName=x", j.display());
        CatalogUrl s = CatalogUrl.parse("postgres://[::1]:5432/c", NO_ENV);
        assertEquals("[::1]:5432", s.hosts());
        assertEquals("jdbc:postgresql://[::1]:5432/c", s.jdbcUrl());
    }

    @Test
    void aMissingUserOrPasswordComesFromTheEnvironmentAsLibpqDoes() {
        CatalogUrl u = CatalogUrl.parse("postgresql://db/cat", Map.of("PGUSER", "envuser", "PGPASSWORD", "envpw"));
        assertEquals("envuser", u.user());
        assertEquals("envpw", u.password());
        assertFalse(u.display().contains("envpw"));
        CatalogUrl none = CatalogUrl.parse("postgresql://db/cat", NO_ENV);
        assertEquals(System.getProperty("user.name"), none.user());
        assertNull(none.password());
        assertEquals("from the URL", CatalogUrl.parse("postgresql://a:from%20the%20URL@db/cat", Map.of("PGPASSWORD", "env")).password());
    }

    @Test
    void badUrlsAreOneLineUsageErrorsThatNeverShowThePassword() {
        List<String> bad = List.of("", "mysql://u:hunter2@h/db", "postgresql://u:hunter2@/db", "postgresql://u:hunter2@h",
                "postgresql://u:hunter2@h/", "postgresql://u:hunter2@h:99999/db", "postgresql://u:hunter2@h:x/db",
                "postgresql://u:hunter2@h/db%zz", "postgresql://u:hunter2@h/db?=v", "postgresql://u:hunter2@bad host/db");
        for (String url : bad) {
            CaskException e = assertThrows(CaskException.Usage.class, () -> CatalogUrl.parse(url, NO_ENV), url);
            assertFalse(e.getMessage().contains("hunter2"), e.getMessage());
            assertFalse(e.getMessage().contains("\n"), e.getMessage());
            assertTrue(e.getMessage().startsWith("catalog URL"), e.getMessage());
        }
        CaskException port = assertThrows(CaskException.Usage.class, () -> CatalogUrl.parse("postgresql://h:99999/db", NO_ENV));
        assertTrue(port.getMessage().contains("port 99999"), port.getMessage());
        CaskException q = assertThrows(CaskException.Usage.class, () -> CatalogUrl.parse("jdbc:postgresql://h:1:2/db?password=hunter2", NO_ENV));
        assertFalse(q.getMessage().contains("hunter2"), q.getMessage());
        assertTrue(q.getMessage().contains("password=***"), q.getMessage());
    }

    @Test
    void redactCutsPasswordsOutOfAnything() {
        assertEquals("postgresql://u:***@h/db", CatalogUrl.redact("postgresql://u:pw@h/db"));
        assertEquals("postgresql://u@h/db", CatalogUrl.redact("postgresql://u@h/db"));
        assertEquals("postgresql://h/db?a=1&password=***&b=2", CatalogUrl.redact("postgresql://h/db?a=1&password=pw&b=2"));
        assertEquals("postgresql://u:***@h/db", CatalogUrl.redact("postgresql://u:p@ss@h/db"));
    }

    @Test
    void withSetsADriverParameterButNeverCredentials() {
        CatalogUrl u = CatalogUrl.parse("postgresql://u:p@h/db?currentSchema=a", NO_ENV).with("currentSchema", "b");
        assertEquals("jdbc:postgresql://h/db?currentSchema=b", u.jdbcUrl());
        assertEquals("p", u.password());
        assertThrows(IllegalArgumentException.class, () -> u.with("password", "x"));
    }
}
