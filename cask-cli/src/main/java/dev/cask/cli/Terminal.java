package dev.cask.cli;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * Whether a file descriptor is a terminal ({@code isatty(3)}), which Java does not tell for
 * stderr ({@link System#console()} speaks of stdin and stdout). Progress bars are drawn only when
 * stderr is one, as qemu-img and rsync do. Where the call is missing, nothing is a terminal.
 */
@SuppressWarnings("restricted") // isatty through the foreign function API is the point of this class
final class Terminal {
    private Terminal() {}

    private static final MethodHandle ISATTY = isatty();

    private static MethodHandle isatty() {
        try {
            Linker linker = Linker.nativeLinker();
            return linker.downcallHandle(linker.defaultLookup().find("isatty").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
        } catch (Throwable t) {
            return null;
        }
    }

    static boolean isTerminal(int fd) {
        if (ISATTY == null) return false;
        try {
            return (int) ISATTY.invokeExact(fd) == 1;
        } catch (Throwable t) {
            return false;
        }
    }
}
