package dev.cask.cli;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.classfile.ClassFile;
import java.lang.classfile.ClassFileVersion;
import java.lang.classfile.ClassHierarchyResolver;
import java.lang.classfile.ClassTransform;
import java.lang.classfile.CodeTransform;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;
import java.util.jar.JarOutputStream;

/**
 * Part of the launcher's start-up cache: re-emits the jar's pre-Java-6 class files (picocli's,
 * compiled for Java 5) as Java 8 class files, into a small jar the launcher puts ahead of the
 * main jar on the class path. The JVM's AOT cache cannot hold class files older than version 50
 * (they have no stack maps, so they cannot be verified and linked ahead of time), so without this
 * every command would load, verify and interpret picocli's classes afresh: a good part of
 * start-up.
 *
 * <p>Each class is parsed and written back by the JDK's class-file API with the same members and
 * instructions, version 52 and stack maps computed from the jar's own class hierarchy; the result
 * must pass the class-file API's verifier (the JVM's rules) or the class is left out, and loads
 * from the main jar as before. Nothing else changes. Usage: {@code ClassUpgrade JAR OUT_JAR};
 * prints how many classes it upgraded and skipped; exit status 0 unless the jar could not be read
 * or written.
 */
public final class ClassUpgrade {
    private static final int OLDEST_LINKABLE = 50;
    private static final int TARGET = 52;

    private ClassUpgrade() {}

    public static void main(String[] args) throws IOException {
        if (args.length != 2) {
            System.err.println("usage: ClassUpgrade JAR OUT_JAR");
            System.exit(2);
        }
        Path jar = Path.of(args[0]);
        Path out = Path.of(args[1]);
        int upgraded = 0;
        int skipped = 0;
        try (URLClassLoader loader = new URLClassLoader(new URL[]{jar.toUri().toURL()}, null);
             JarFile in = new JarFile(jar.toFile());
             OutputStream file = Files.newOutputStream(out);
             JarOutputStream jo = new JarOutputStream(file)) {
            ClassFile cf = ClassFile.of(ClassFile.StackMapsOption.GENERATE_STACK_MAPS,
                    ClassFile.ClassHierarchyResolverOption.of(ClassHierarchyResolver.defaultResolver()
                            .orElse(ClassHierarchyResolver.ofResourceParsing(loader))));
            for (JarEntry e : Collections.list(in.entries())) {
                if (!e.getName().endsWith(".class") || e.getName().startsWith("META-INF/")) continue;
                byte[] bytes;
                try (InputStream is = in.getInputStream(e)) {
                    bytes = is.readAllBytes();
                }
                if (bytes.length < 8 || (((bytes[6] & 0xff) << 8) | (bytes[7] & 0xff)) >= OLDEST_LINKABLE) continue;
                byte[] modern;
                try {
                    modern = cf.transformClass(cf.parse(bytes),
                            ClassTransform.transformingMethodBodies(CodeTransform.ACCEPT_ALL).andThen((cb, el) -> {
                                if (el instanceof ClassFileVersion) cb.withVersion(TARGET, 0);
                                else cb.with(el);
                            }));
                    if (!cf.verify(modern).isEmpty()) modern = null;
                } catch (RuntimeException ex) { // e.g. a jsr instruction: keep the original class
                    modern = null;
                }
                if (modern == null) {
                    skipped++;
                    continue;
                }
                jo.putNextEntry(new JarEntry(e.getName()));
                jo.write(modern);
                jo.closeEntry();
                upgraded++;
            }
        }
        System.out.println("upgraded " + upgraded + " class files, skipped " + skipped);
    }
}
