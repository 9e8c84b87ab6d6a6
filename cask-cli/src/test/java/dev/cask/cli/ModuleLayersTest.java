package dev.cask.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.tools.DiagnosticCollector;
import javax.tools.JavaCompiler;
import javax.tools.JavaFileObject;
import javax.tools.StandardJavaFileManager;
import javax.tools.ToolProvider;
import java.io.File;
import java.lang.module.ModuleDescriptor;
import java.lang.module.ModuleFinder;
import java.lang.module.ModuleReference;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The layers of DESIGN.md as the compiler sees them. Every Maven module of cask is a named module
 * (module-info.java); this test reads their compiled descriptors and checks that each requires
 * only modules below it in the layer order, that the local store and SQLite are exported only to
 * the modules that compose or implement stores, and, with javac itself, that a class of the image
 * layer that imports the local store does not compile while one that imports the store interface
 * does. A `requires` pointing up, or an export widened, fails here rather than in review.
 */
class ModuleLayersTest {
    /** Bottom to top: a module may require only modules before it. */
    private static final List<String> LAYERS = List.of("dev.cask.common", "dev.cask.store", "dev.cask.catalog",
            "dev.cask.tree", "dev.cask.nbd", "dev.cask.formats", "dev.cask.volume", "dev.cask.local", "dev.cask.server",
            "dev.cask.postgres", "dev.cask.s3", "dev.cask.analysis", "dev.cask.cli");

    /** A class of each module, to find where its compiled classes are (a target/classes directory or a jar). */
    private static final List<Class<?>> ANCHORS = List.of(dev.cask.common.CaskException.class, dev.cask.store.ChunkStore.class,
            dev.cask.catalog.Catalog.class, dev.cask.tree.Layout.class, dev.cask.server.nbd.NbdServer.class,
            dev.cask.format.Formats.class, dev.cask.image.Images.class, dev.cask.local.LocalImages.class,
            dev.cask.server.ImageExports.class, dev.cask.catalog.postgres.PostgresCatalog.class,
            dev.cask.store.s3.S3ChunkStore.class, dev.cask.analysis.BlockAnalysis.class, Main.class);

    private static Path location(Class<?> c) {
        try {
            return Path.of(c.getProtectionDomain().getCodeSource().getLocation().toURI());
        } catch (URISyntaxException e) {
            throw new AssertionError(e);
        }
    }

    private static Map<String, ModuleDescriptor> descriptors() {
        Map<String, ModuleDescriptor> out = new LinkedHashMap<>();
        for (Class<?> c : ANCHORS) {
            Set<ModuleReference> refs = ModuleFinder.of(location(c)).findAll();
            assertEquals(1, refs.size(), location(c) + " holds no module-info (or several)");
            ModuleDescriptor d = refs.iterator().next().descriptor();
            assertTrue(d.packages().contains(c.getPackageName()), d.name() + " does not hold " + c.getName());
            out.put(d.name(), d);
        }
        return out;
    }

    @Test
    void everyModuleRequiresOnlyLayersBelowIt() {
        Map<String, ModuleDescriptor> all = descriptors();
        assertEquals(new TreeSet<>(LAYERS), new TreeSet<>(all.keySet()));
        for (ModuleDescriptor d : all.values()) {
            int level = LAYERS.indexOf(d.name());
            for (ModuleDescriptor.Requires r : d.requires()) {
                if (!r.name().startsWith("dev.cask.")) continue;
                assertTrue(LAYERS.indexOf(r.name()) < level, d.name() + " requires " + r.name() + ", which is not below it");
            }
        }
        // the image layer stands on interfaces: nothing of the compositions, the server or the back ends
        Set<String> belowVolume = closure(all, "dev.cask.volume");
        assertEquals(Set.of("dev.cask.common", "dev.cask.store", "dev.cask.catalog", "dev.cask.tree", "dev.cask.nbd",
                "dev.cask.formats"), belowVolume);
        assertFalse(closure(all, "dev.cask.postgres").contains("dev.cask.local"), "the PostgreSQL back end needs no local store composition");
        assertFalse(closure(all, "dev.cask.s3").contains("dev.cask.server"), "the S3 back end needs no server");
    }

    @Test
    void theLocalStoreAndSqliteAreExportedOnlyToTheirComposers() {
        Map<String, ModuleDescriptor> all = descriptors();
        assertEquals(Map.of("dev.cask.store", Set.of(), "dev.cask.store.cache", Set.of(),
                        "dev.cask.store.local", Set.of("dev.cask.local", "dev.cask.postgres", "dev.cask.s3", "dev.cask.cli")),
                exports(all.get("dev.cask.store")));
        assertEquals(Map.of("dev.cask.catalog", Set.of(), "dev.cask.catalog.sqlite", Set.of("dev.cask.local")),
                exports(all.get("dev.cask.catalog")));
    }

    @Test
    void javacRefusesTheImageLayerAnImportOfTheLocalStore(@TempDir Path dir) throws Exception {
        // compiled as part of module dev.cask.volume, as its own classes are
        List<String> refused = compileIntoVolume(dir.resolve("a"), "import dev.cask.store.local.LocalChunkStore;",
                "LocalChunkStore store;");
        assertTrue(refused.stream().anyMatch(m -> m.contains("dev.cask.store.local") && m.contains("not visible")), refused.toString());
        List<String> sqlite = compileIntoVolume(dir.resolve("b"), "import dev.cask.catalog.sqlite.SqliteCatalog;",
                "SqliteCatalog catalog;");
        assertTrue(sqlite.stream().anyMatch(m -> m.contains("dev.cask.catalog.sqlite") && m.contains("not visible")), sqlite.toString());
        List<String> server = compileIntoVolume(dir.resolve("c"), "import dev.cask.server.ImageExports;", "ImageExports exports;");
        assertFalse(server.isEmpty(), "a class of the image layer compiled against the server above it");
        // the control: the store's interface and the pack-scan report are the image layer's to use
        assertEquals(List.of(), compileIntoVolume(dir.resolve("d"), "import dev.cask.store.ChunkLocation;\nimport dev.cask.store.ScanSink;",
                "ChunkLocation where; ScanSink sink;"));
    }

    /** Compiles one class of package dev.cask.image into module dev.cask.volume; the error messages, none when it compiled. */
    private static List<String> compileIntoVolume(Path dir, String imports, String fields) throws Exception {
        Path src = dir.resolve("src/dev/cask/image/Probe.java");
        Files.createDirectories(src.getParent());
        Files.writeString(src, "package dev.cask.image;\n" + imports + "\nclass Probe { " + fields + " }\n");
        List<Path> modulePath = new ArrayList<>();
        List<Class<?>> classes = new ArrayList<>(ANCHORS.subList(0, LAYERS.indexOf("dev.cask.server") + 1)); // the server and what it stands on
        classes.addAll(List.of(com.github.luben.zstd.Zstd.class, com.github.benmanes.caffeine.cache.Caffeine.class, org.sqlite.JDBC.class));
        for (Class<?> c : classes) modulePath.add(location(c));
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        DiagnosticCollector<JavaFileObject> diagnostics = new DiagnosticCollector<>();
        try (StandardJavaFileManager files = javac.getStandardFileManager(diagnostics, null, null)) {
            List<String> options = List.of("-d", Files.createDirectories(dir.resolve("out")).toString(),
                    "--module-path", modulePath.stream().map(Path::toString).collect(Collectors.joining(File.pathSeparator)),
                    "--patch-module", "dev.cask.volume=" + dir.resolve("src"),
                    "--add-modules", "dev.cask.local,dev.cask.server");
            javac.getTask(null, files, diagnostics, options, null, files.getJavaFileObjects(src)).call();
        }
        return diagnostics.getDiagnostics().stream().filter(d -> d.getKind() == javax.tools.Diagnostic.Kind.ERROR)
                .map(d -> d.getMessage(null)).toList();
    }

    private static Set<String> closure(Map<String, ModuleDescriptor> all, String module) {
        Set<String> out = new TreeSet<>();
        List<String> todo = new ArrayList<>(List.of(module));
        while (!todo.isEmpty()) {
            for (ModuleDescriptor.Requires r : all.get(todo.removeLast()).requires()) {
                if (all.containsKey(r.name()) && out.add(r.name())) todo.add(r.name());
            }
        }
        return out;
    }

    private static Map<String, Set<String>> exports(ModuleDescriptor d) {
        return d.exports().stream().collect(Collectors.toMap(ModuleDescriptor.Exports::source, ModuleDescriptor.Exports::targets));
    }
}
